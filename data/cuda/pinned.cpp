// Pinned staging buffers and asynchronous host-to-device batch copies (CUDA builds only).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "data/pinned.h"
#include "core/cuda/check.h"
#include "core/cuda/stream.h"

namespace ember::data::detail {

class PinnedPool {
 public:
  struct Buffer {
    void* ptr = nullptr;
    size_t bytes = 0;
    cudaEvent_t event = nullptr;
    bool pending = false;  // event recorded after a copy out of this buffer
  };

  explicit PinnedPool(int device) : device_(device) {}
  ~PinnedPool() {
    // Destructors must not throw: errors here are ignored (the process may be exiting).
    for (Buffer& b : free_) {
      if (b.pending) cudaEventSynchronize(b.event);
      cudaEventDestroy(b.event);
      cudaFreeHost(b.ptr);
    }
  }

  Buffer acquire(size_t bytes) {
    Buffer b;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < free_.size(); ++i) {
        if (free_[i].bytes >= bytes) {
          b = free_[i];
          free_.erase(free_.begin() + std::ptrdiff_t(i));
          break;
        }
      }
    }
    if (!b.ptr) {
      cuda::DeviceGuard g(device_);
      EMBER_CUDA_CHECK(cudaHostAlloc(&b.ptr, bytes, cudaHostAllocPortable));
      cudaError_t e = cudaEventCreateWithFlags(&b.event, cudaEventDisableTiming);
      if (e != cudaSuccess) cudaFreeHost(b.ptr);
      EMBER_CUDA_CHECK(e);
      b.bytes = bytes;
    }
    if (b.pending) {
      // The previous batch in this buffer may still be on its way to the GPU.
      cuda::event_synchronize(b.event);  // counted: a loader this far ahead waits here
      b.pending = false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    leased_[b.ptr] = b;
    return b;
  }

  void release(void* ptr) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = leased_.find(ptr);
    if (it == leased_.end()) return;
    free_.push_back(it->second);
    leased_.erase(it);
  }

  // Marks the copies just queued on `stream` as the buffer's last use.
  void record(void* ptr, cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = leased_.find(ptr);
    EMBER_CHECK(it != leased_.end(), "PinnedPool: buffer is not from this pool");
    EMBER_CUDA_CHECK(cudaEventRecord(it->second.event, stream));
    it->second.pending = true;
  }

  int device() const { return device_; }

 private:
  int device_;
  std::mutex mu_;
  std::vector<Buffer> free_;
  std::unordered_map<void*, Buffer> leased_;
};

std::shared_ptr<PinnedPool> make_pinned_pool(int device) {
  return std::make_shared<PinnedPool>(device);
}

namespace {
// Returns the buffer to the pool when the last tensor viewing it is gone.
struct Lease {
  std::shared_ptr<PinnedPool> pool;
  void* ptr;
  ~Lease() { pool->release(ptr); }
};
}  // namespace

Batch pinned_batch(const std::shared_ptr<PinnedPool>& pool, const std::vector<Field>& fields, int64_t batch) {
  // The fields back to back in one buffer, each at a 64-byte boundary; the first at offset 0,
  // so its storage names the buffer (copy_to_device_async records the copies on it).
  std::vector<size_t> offsets;
  size_t total = 0;
  for (const Field& f : fields) {
    offsets.push_back(total);
    total += (size_t(batch * shape_numel(f.shape) * dtype_size(f.dtype)) + 63) / 64 * 64;
  }
  PinnedPool::Buffer buf = pool->acquire(std::max<size_t>(total, 64));
  auto lease = std::make_shared<Lease>(Lease{pool, buf.ptr});
  Storage::Deleter keep = [lease](void*) {};
  Batch b;
  for (size_t k = 0; k < fields.size(); ++k) {
    Shape s = fields[k].shape;
    s.insert(s.begin(), batch);
    b.set(fields[k].name, from_blob(static_cast<char*>(buf.ptr) + offsets[k], s, {.dtype = fields[k].dtype}, keep));
  }
  return b;
}

Batch copy_to_device_async(PinnedPool& pool, const Batch& host, int device) {
  cuda::DeviceGuard g(device);
  cudaStream_t stream = cuda::current_stream(device);
  const Device dev(DeviceType::cuda, device);
  Batch out;
  for (const auto& [name, t] : host.fields()) {
    Tensor d = empty(t.shape(), {.dtype = t.dtype(), .device = dev});
    EMBER_CUDA_CHECK(cudaMemcpyAsync(d.data_ptr(), t.data_ptr(), size_t(t.nbytes()), cudaMemcpyHostToDevice, stream));
    out.set(name, d);
  }
  if (!host.fields().empty()) pool.record(host.fields().front().second.storage()->data(), stream);
  return out;
}

}  // namespace ember::data::detail
