#pragma once
// Pinned (page-locked) host staging buffers for batches bound for a GPU. Declared without
// CUDA types; defined in data/cuda/pinned.cpp, so callable only where EMBER_WITH_CUDA is 1.
#include <memory>

#include "data/dataset.h"

namespace ember::data::detail {

/// A pool of pinned host buffers for one device. A buffer is reused only after the last
/// asynchronous copy out of it has finished (each buffer carries a CUDA event).
class PinnedPool;

std::shared_ptr<PinnedPool> make_pinned_pool(int device);

/// A host batch of `batch` samples of `fields` (one (batch, ...) tensor each) whose tensors
/// share one pinned buffer from `pool`; the buffer goes back to the pool when all of them
/// are gone.
Batch pinned_batch(const std::shared_ptr<PinnedPool>& pool, const std::vector<Field>& fields, int64_t batch);

/// Device copies of a batch made by pinned_batch, queued with cudaMemcpyAsync on the
/// device's current stream (so later ops on that stream see the data). Returns at once.
Batch copy_to_device_async(PinnedPool& pool, const Batch& host, int device);

}  // namespace ember::data::detail
