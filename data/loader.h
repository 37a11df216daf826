#pragma once
// DataLoader: batches from a Dataset in sampler order, optionally prepared by background
// threads, optionally moved to a GPU through pinned host memory.
//
// Note [Loader position]: a loader is a stream of batches with a position
// (epoch, batch): the next batch it delivers. A finished epoch moves the position to
// (epoch + 1, 0); `set_epoch` and `skip` move it by hand. Together with the seed the
// position is everything needed to continue a run from the exact iteration: save
// `state()` in a checkpoint, call `load_state()` on the new loader, and it delivers the
// very batches the interrupted run would have delivered next.
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>

#include "data/dataset.h"
#include "data/sampler.h"

namespace ember::data {

namespace detail {
class PinnedPool;  // data/pinned.h
}

struct DataLoaderOptions {
  int64_t batch_size = 64;
  /// Visit a fresh permutation each epoch (RandomSampler(seed)); ignored with a custom sampler.
  bool shuffle = false;
  uint64_t seed = 0;
  /// Leave out the last batch when it would be smaller than batch_size.
  bool drop_last = false;
  /// Background threads preparing batches (0: batches are made in next(), synchronously).
  /// Batches come out in the same order, and equal, whatever the number of workers.
  int num_workers = 0;
  /// Batches each worker may prepare ahead (the queue holds num_workers * prefetch_factor).
  int prefetch_factor = 2;
  /// Where batches are delivered. For a CUDA device, batches are staged in pinned host
  /// memory (pin_memory) and copied asynchronously on the device's current stream.
  Device device = kCPU;
  bool pin_memory = true;
  /// Keep the whole dataset on `device` and assemble batches there through
  /// Dataset::get_batch_on (a gather + normalize kernel, and for an AugmentedDataset a crop +
  /// flip kernel: Note [Batches on the device] in data/augment.h); no workers, no host copies
  /// beyond the batch's indices. The batches equal the usual ones bit for bit. Needs a dataset
  /// that supports_device_batches() (in-memory image datasets such as MNIST and CIFAR-10, a
  /// few hundred MB at most, subsets and augmentations of them). The apps turn it on for CUDA
  /// devices unless --no-data-on-device.
  bool dataset_on_device = false;
};

/// The loader's position and seed (Note [Loader position]).
struct LoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;  // the next batch to deliver within the epoch
  uint64_t seed = 0;
  bool operator==(const LoaderState&) const = default;
};

class DataLoader {
 public:
  /// Without `sampler`: SequentialSampler, or RandomSampler(size, seed) when shuffle is set.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options = {},
             std::shared_ptr<const Sampler> sampler = nullptr);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// Batches per epoch.
  int64_t num_batches() const;
  /// Samples per epoch (the sampler's size).
  int64_t num_samples() const;
  const DataLoaderOptions& options() const { return opt_; }
  const Dataset& dataset() const { return *dataset_; }

  /// Moves the position to the start of `epoch`.
  void set_epoch(int64_t epoch);
  int64_t epoch() const { return epoch_; }
  /// Moves the position `n` batches forward within the current epoch (at most to its end).
  void skip(int64_t n_batches);
  LoaderState state() const { return {epoch_, batch_, opt_.seed}; }
  /// Continues from a saved position. The seed must match this loader's, unless the loader
  /// made its own RandomSampler, which is then rebuilt with the saved seed.
  void load_state(const LoaderState& state);

  /// The next batch, or nothing at the end of an epoch (the position then moves to the
  /// next epoch, whose first batch the following call returns).
  std::optional<Batch> next();

  /// Range-for over the rest of the current epoch: `for (Batch& b : loader) ...`.
  class Iterator {
   public:
    Batch& operator*() { return *batch_; }
    Batch* operator->() { return &*batch_; }
    Iterator& operator++() {
      batch_ = loader_->next();
      return *this;
    }
    bool operator!=(std::default_sentinel_t) const { return batch_.has_value(); }
    bool operator==(std::default_sentinel_t) const { return !batch_.has_value(); }

   private:
    friend class DataLoader;
    DataLoader* loader_ = nullptr;
    std::optional<Batch> batch_;
  };
  Iterator begin();
  std::default_sentinel_t end() { return {}; }

 private:
  struct Pass;
  void stop_pass();
  void start_pass();
  Batch make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t b) const;
  Batch to_device(Batch b) const;
  bool use_workers() const { return opt_.num_workers > 0 && !opt_.dataset_on_device; }

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions opt_;
  std::shared_ptr<const Sampler> sampler_;
  bool own_sampler_ = false;
  int64_t epoch_ = 0;
  int64_t batch_ = 0;
  std::unique_ptr<Pass> pass_;
  std::shared_ptr<detail::PinnedPool> pinned_;  // staging buffers (CUDA device + pin_memory)
};

}  // namespace ember::data
