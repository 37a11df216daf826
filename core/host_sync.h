#pragma once
// Device-independent halves of two CUDA mechanisms, built in every configuration (so the
// CPU suite tests their logic): the counter behind cuda::sync_count() and the queue of
// deferred device checks (Note [Deferred checks] in core/cuda_context.h).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ember::detail {

/// Adds one to cuda::sync_count(); called by every wrapper that makes the host wait.
void count_host_sync();

/// One check whose result a device writes later.
class DeferredCheck {
 public:
  virtual ~DeferredCheck() = default;
  /// True once the result has landed; must not wait.
  virtual bool ready() = 0;
  /// Blocks until ready().
  virtual void wait() = 0;
  /// Called once ready: the error message, or "" when the check passed.
  virtual std::string verdict() = 0;
};

/// The pending checks of one device, oldest first. Ready ones are consumed by report();
/// the first failure among them is thrown (as ember::Error) after all ready ones are gone,
/// so one bad batch is reported once.
class DeferredChecks {
 public:
  explicit DeferredChecks(size_t max_pending = 1024) : max_pending_(max_pending) {}
  /// Queues a check. With max_pending already queued, the oldest is waited for first
  /// (bounded memory when nothing ever synchronizes); its failure is thrown from here.
  void push(std::unique_ptr<DeferredCheck> c);
  /// Consumes every ready check (waits for none) and throws the first failure.
  void report();
  /// Waits for every pending check, then report()s.
  void report_all();
  size_t pending() const;

 private:
  void throw_first(std::vector<std::unique_ptr<DeferredCheck>>& done);
  mutable std::mutex mu_;
  size_t max_pending_;
  std::vector<std::unique_ptr<DeferredCheck>> pending_;
};

}  // namespace ember::detail
