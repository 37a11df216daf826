// The host-sync counter and the deferred-check queue (core/host_sync.h).
#include "core/host_sync.h"

#include <atomic>

#include "core/cuda_context.h"
#include "core/error.h"

namespace ember {

namespace {
std::atomic<int64_t> g_host_syncs{0};
}

void detail::count_host_sync() { g_host_syncs.fetch_add(1, std::memory_order_relaxed); }

int64_t cuda::sync_count() { return g_host_syncs.load(std::memory_order_relaxed); }

namespace detail {

void DeferredChecks::push(std::unique_ptr<DeferredCheck> c) {
  std::vector<std::unique_ptr<DeferredCheck>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() >= max_pending_ && !pending_.empty()) {
      pending_.front()->wait();
      done.push_back(std::move(pending_.front()));
      pending_.erase(pending_.begin());
    }
    pending_.push_back(std::move(c));
  }
  throw_first(done);
}

void DeferredChecks::report() {
  std::vector<std::unique_ptr<DeferredCheck>> done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Ask them all first: ready() may throw (a faulted device), leaving the queue intact.
    std::vector<char> is_ready(pending_.size());
    for (size_t i = 0; i < pending_.size(); ++i) is_ready[i] = pending_[i]->ready();
    std::vector<std::unique_ptr<DeferredCheck>> keep;
    for (size_t i = 0; i < pending_.size(); ++i)
      (is_ready[i] ? done : keep).push_back(std::move(pending_[i]));
    pending_ = std::move(keep);
  }
  throw_first(done);
}

void DeferredChecks::report_all() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : pending_) c->wait();
  }
  report();
}

size_t DeferredChecks::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

void DeferredChecks::throw_first(std::vector<std::unique_ptr<DeferredCheck>>& done) {
  std::string first;
  for (auto& c : done) {
    std::string v = c->verdict();
    if (first.empty()) first = std::move(v);
  }
  done.clear();  // frees the checks' resources before the throw
  if (!first.empty()) throw Error(first);
}

}  // namespace detail

}  // namespace ember
