// DataLoader: in-order batches from background workers through a bounded slot ring.
#include "data/loader.h"

#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "data/pinned.h"
#include "core/cuda_context.h"
#include "tensor/layout.h"

namespace ember::data {

// One pass over (the rest of) an epoch. Workers claim batch numbers in increasing order,
// but never more than `capacity` ahead of the consumer, and park each finished batch in
// slot (batch % capacity); the consumer takes the slots in order. So batches come out in
// order, equal to the synchronous ones, with at most `capacity` of them in memory.
struct DataLoader::Pass {
  std::vector<int64_t> order;  // the epoch's sample indices
  int64_t epoch = 0;           // fixed for the pass: every batch of it is made for this epoch
  int64_t end_batch = 0;
  int64_t capacity = 0;
  std::mutex mu;
  std::condition_variable can_produce, can_consume;
  int64_t next_claim = 0, next_consume = 0;
  std::vector<std::optional<Batch>> slots;
  std::vector<std::exception_ptr> errors;
  bool stop = false;
  std::vector<std::thread> threads;
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options,
                       std::shared_ptr<const Sampler> sampler)
    : dataset_(std::move(dataset)), opt_(options), sampler_(std::move(sampler)) {
  EMBER_CHECK(dataset_ != nullptr, "DataLoader: no dataset");
  EMBER_CHECK(opt_.batch_size >= 1, "DataLoader: batch_size must be >= 1, got ", opt_.batch_size);
  EMBER_CHECK(opt_.num_workers >= 0, "DataLoader: num_workers must be >= 0, got ",
              opt_.num_workers);
  EMBER_CHECK(opt_.prefetch_factor >= 1, "DataLoader: prefetch_factor must be >= 1, got ",
              opt_.prefetch_factor);
  if (!sampler_) {
    own_sampler_ = true;
    if (opt_.shuffle) {
      sampler_ = std::make_shared<RandomSampler>(dataset_->size(), opt_.seed);
    } else {
      sampler_ = std::make_shared<SequentialSampler>(dataset_->size());
    }
  }
  if (opt_.device.is_cuda()) {
    check_device_available(opt_.device, "DataLoader");
    int n = cuda::device_count();
    EMBER_CHECK(opt_.device.index < n, "DataLoader: batches for ", opt_.device.str(),
                " were requested but ",
                n == 0 ? std::string("no CUDA device is available")
                       : "only " + std::to_string(n) + " CUDA device(s) exist");
#if EMBER_WITH_CUDA
    if (opt_.pin_memory && !opt_.dataset_on_device) {
      pinned_ = detail::make_pinned_pool(opt_.device.index);
    }
#endif
  }
  if (opt_.dataset_on_device) {
    EMBER_CHECK(dataset_->supports_device_batches(),
                "DataLoader: dataset_on_device needs a dataset that assembles batches on the "
                "device (an ImageTensorDataset such as MNIST or CIFAR-10)");
  }
}

DataLoader::~DataLoader() { stop_pass(); }

int64_t DataLoader::num_samples() const { return sampler_->size(); }

int64_t DataLoader::num_batches() const {
  int64_t n = num_samples(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::set_epoch(int64_t epoch) {
  EMBER_CHECK(epoch >= 0, "DataLoader::set_epoch: epoch must be >= 0, got ", epoch);
  stop_pass();
  epoch_ = epoch;
  batch_ = 0;
}

void DataLoader::skip(int64_t n_batches) {
  EMBER_CHECK(n_batches >= 0, "DataLoader::skip: cannot skip ", n_batches, " batches");
  EMBER_CHECK(batch_ + n_batches <= num_batches(), "DataLoader::skip: cannot skip ", n_batches,
              " batches from batch ", batch_, ": the epoch has ", num_batches());
  stop_pass();
  batch_ += n_batches;
}

void DataLoader::load_state(const LoaderState& s) {
  stop_pass();
  if (s.seed != opt_.seed) {
    EMBER_CHECK(own_sampler_, "DataLoader::load_state: the saved seed ", s.seed,
                " differs from this loader's seed ", opt_.seed,
                " and its sampler was given from outside; build the sampler with seed ", s.seed);
    opt_.seed = s.seed;
    if (opt_.shuffle) sampler_ = std::make_shared<RandomSampler>(dataset_->size(), opt_.seed);
  }
  EMBER_CHECK(s.epoch >= 0 && s.batch >= 0 && s.batch <= num_batches(),
              "DataLoader::load_state: position (epoch ", s.epoch, ", batch ", s.batch,
              ") is not valid for a loader with ", num_batches(), " batches per epoch");
  set_epoch(s.epoch);
  skip(s.batch);
}

Batch DataLoader::make_batch(const std::vector<int64_t>& order, int64_t epoch, int64_t b) const {
  const int64_t start = b * opt_.batch_size;
  const int64_t n = std::min<int64_t>(opt_.batch_size, int64_t(order.size()) - start);
  // One (n, ...) host tensor per field (Note [Named fields]), pinned when bound for a GPU.
  const std::vector<Field> fields = dataset_->fields();
  Batch out;
#if EMBER_WITH_CUDA
  if (pinned_) out = detail::pinned_batch(pinned_, fields, n);
#endif
  if (out.fields().empty()) {
    for (const Field& f : fields) {
      Shape s = f.shape;
      s.insert(s.begin(), n);
      out.set(f.name, empty(s, {.dtype = f.dtype}));
    }
  }
  TensorList bufs;
  for (const auto& field : out.fields()) bufs.push_back(field.second);
  dataset_->fill(std::span<const int64_t>(order.data() + start, size_t(n)), epoch, bufs);
  return out;
}

Batch DataLoader::to_device(Batch b) const {
  if (opt_.device.is_cpu()) return b;
#if EMBER_WITH_CUDA
  if (pinned_) return detail::copy_to_device_async(*pinned_, b, opt_.device.index);
#endif
  return b.to(opt_.device);
}

void DataLoader::start_pass() {
  auto p = std::make_unique<Pass>();
  p->order = sampler_->indices(epoch_);
  p->epoch = epoch_;
  EMBER_CHECK(int64_t(p->order.size()) == sampler_->size(), "DataLoader: the sampler gave ",
              p->order.size(), " indices for epoch ", epoch_, " but reports size ",
              sampler_->size());
  p->end_batch = num_batches();
  p->next_claim = p->next_consume = batch_;
  if (use_workers()) {
    p->capacity = int64_t(opt_.num_workers) * opt_.prefetch_factor;
    p->slots.resize(size_t(p->capacity));
    p->errors.resize(size_t(p->capacity));
    Pass* pp = p.get();
    for (int w = 0; w < opt_.num_workers; ++w) {
      p->threads.emplace_back([this, pp] {
        for (;;) {
          int64_t b;
          {
            std::unique_lock<std::mutex> lock(pp->mu);
            pp->can_produce.wait(lock, [pp] {
              return pp->stop || pp->next_claim >= pp->end_batch ||
                     pp->next_claim < pp->next_consume + pp->capacity;
            });
            if (pp->stop || pp->next_claim >= pp->end_batch) return;
            b = pp->next_claim++;
          }
          std::optional<Batch> out;
          std::exception_ptr err;
          try {
            out = make_batch(pp->order, pp->epoch, b);
          } catch (...) {
            err = std::current_exception();
          }
          {
            std::lock_guard<std::mutex> lock(pp->mu);
            size_t slot = size_t(b % pp->capacity);
            pp->slots[slot] = std::move(out);
            pp->errors[slot] = err;
          }
          pp->can_consume.notify_all();
        }
      });
    }
  }
  pass_ = std::move(p);
}

void DataLoader::stop_pass() {
  if (!pass_) return;
  {
    std::lock_guard<std::mutex> lock(pass_->mu);
    pass_->stop = true;
  }
  pass_->can_produce.notify_all();
  for (auto& t : pass_->threads) t.join();
  pass_.reset();
}

std::optional<Batch> DataLoader::next() {
  if (batch_ >= num_batches()) {
    stop_pass();
    ++epoch_;
    batch_ = 0;
    return std::nullopt;
  }
  if (!pass_) start_pass();
  Batch b;
  if (opt_.dataset_on_device) {
    const int64_t start = batch_ * opt_.batch_size;
    const int64_t n = std::min<int64_t>(opt_.batch_size, int64_t(pass_->order.size()) - start);
    b = dataset_->get_batch_on(
        std::span<const int64_t>(pass_->order.data() + start, size_t(n)), pass_->epoch, opt_.device);
    ++batch_;
    return b;
  }
  if (!use_workers()) {
    b = make_batch(pass_->order, pass_->epoch, batch_);
  } else {
    Pass& p = *pass_;
    std::exception_ptr err;
    {
      std::unique_lock<std::mutex> lock(p.mu);
      size_t slot = size_t(batch_ % p.capacity);
      p.can_consume.wait(lock, [&] { return p.slots[slot].has_value() || p.errors[slot]; });
      err = p.errors[slot];
      if (!err) b = std::move(*p.slots[slot]);
      p.slots[slot].reset();
      p.errors[slot] = nullptr;
      ++p.next_consume;
    }
    p.can_produce.notify_all();
    if (err) {
      // Leave the position at the failed batch; the next call starts a fresh pass.
      stop_pass();
      std::rethrow_exception(err);
    }
  }
  ++batch_;
  return to_device(std::move(b));
}

DataLoader::Iterator DataLoader::begin() {
  Iterator it;
  it.loader_ = this;
  it.batch_ = next();
  return it;
}

}  // namespace ember::data
