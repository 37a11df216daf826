#pragma once
// Storage: a reference-counted block of device memory shared by tensor views.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace ember {

class Storage {
 public:
  using Deleter = std::function<void(void*)>;

  /// Allocates `nbytes` on `device` from its allocator.
  Storage(int64_t nbytes, Device device);
  /// Borrows `data`; `deleter` (may be empty) runs when the last view goes away.
  Storage(void* data, int64_t nbytes, Device device, Deleter deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  // Note [Version counter]: bumped by every in-place write to any view of this storage;
  // autograd compares it with the value seen when a tensor was saved for backward.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

  /// Storages alive in this process and their bytes (leak checks in tests and debugging).
  static int64_t live_count();
  static int64_t live_bytes();

 private:
  void* data_ = nullptr;
  int64_t nbytes_ = 0;
  Device device_;
  Deleter deleter_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace ember
