#pragma once
// train::Trainer: the training loop of ember, with hooks.
//
//   auto trainer = train::Trainer(model, loss_fn, optimizer, scheduler, train_loader,
//                                 test_loader, {.epochs = 10, .out = "out/run"});
//   trainer.register_hook(std::make_shared<MyHook>());
//   train::FitResult r = trainer.fit();
//
// Each iteration: forward, loss, backward (through dist::DDP when the process group has
// more than one rank), optimizer step; then every hook's after_iteration.
//
// Note [Mixed precision in the loop]: with options.amp = f16 or bf16 the forward pass and
// the loss run under AutocastGuard (autograd/autocast.h); parameters, gradients, optimizer
// state and checkpoints stay f32. f16 adds loss scaling (optim::GradScaler, as
// torch.cuda.amp): backward of loss * scale, unscale before clipping, the step skipped when
// a gradient is inf/NaN (the scale then halves; it doubles after growth_interval clean
// steps). A skipped step is left out of the epoch's sums; metrics show loss_scale and
// skipped_steps. The scaler's state is in last.ckpt, so --resume stays exact. bf16 has
// f32's range and needs no scaling. options.clip_grad_norm clips the (unscaled) gradients'
// total norm before each step. Each epoch ends
// with the after_epoch hooks. Everything else is a hook (train/hooks.h), registered by
// default and ordered by priority (lower first; equal priorities in registration order):
//
//   10 LRSchedulerHook   steps the scheduler per epoch or per iteration (options.sched_unit)
//   20 EvalHook          test loss and accuracy over all ranks after each epoch
//   30 ProgressHook      the live bar / a log line every log_interval iterations
//   40 LogHook           the epoch line (train.log and console), the final summary
//   50 (user hooks, by default)
//   60 MetricsHook       OUT/metrics.jsonl, one JSON object per epoch
//   70 TensorBoardHook   scalars (and the image grid) in OUT/tb/events.out.tfevents.*
//   75 ImageGridHook     every image_every epochs a PNG grid of test predictions
//   90 CheckpointHook    last.ckpt every save_every iterations and per epoch, the last
//                        keep_checkpoints as checkpoint_<iteration>.ckpt, best.safetensors
//
// Note [Exact resume]: a checkpoint holds the model, the optimizer buffers, the scheduler,
// the loader position (epoch, next batch, seed), the RNG state and the running epoch sums,
// so a run stopped after iteration k and resumed performs exactly the computations the
// uninterrupted run would have (on CPU the weights come out bit for bit equal). Hooks must
// not draw from the default generator (or the resumed run differs).
//
// Data parallel (`mpirun -np N`, dist::init_process_group() before the trainer): every rank
// trains on its DistributedSampler shard through dist::DDP, evaluates its unpadded shard of
// the test set (sums added over ranks), and rank 0 alone logs, writes metrics and
// checkpoints. Give the loaders the rank's share: data::DistributedSampler for training,
// dist::ShardSampler for the test set (apps/common/trainer.cpp does). Hooks run on every
// rank (evaluation and checkpoints are collectives); those that write files do so on
// rank 0 (`trainer.is_main()`).
//
// A hook that throws ends the run: fit() throws an ember::Error naming the hook and the
// call; the checkpoints already written stay intact (each is written to a temporary file
// and renamed into place). A hook stops the run with state.request_stop(): after the
// current iteration (skipping the rest of the epoch and its after_epoch hooks, writing no
// extra checkpoint), or, from after_epoch, after that epoch.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "data/loader.h"
#include "dist/ddp.h"
#include "nn/module.h"
#include "optim/grad_scaler.h"
#include "optim/lr_scheduler.h"
#include "optim/optimizer.h"
#include "train/log.h"

namespace ember::train {

class Trainer;

/// The metadata key under which last.ckpt and best.safetensors keep the CPU convolution
/// algorithm picks (Note [Algorithm choices travel with the run] in kernels/cpu/conv.cpp).
inline constexpr const char* kConvAlgosKey = "ember.cpu_conv_algos";
/// Loads the picks saved in `f` before its weights are used (nothing when it has none).
void load_conv_algorithm_choices(const SafetensorsFile& f);

/// A loss: (model output, batch labels) -> the mean loss (a scalar).
using LossFn = std::function<Tensor(const Tensor& output, const Tensor& target)>;

/// Named numbers in the order they were set (one epoch's metrics).
class Metrics {
 public:
  void set(const std::string& key, double value);
  bool has(const std::string& key) const;
  /// Throws when absent.
  double get(const std::string& key) const;
  double get(const std::string& key, double fallback) const;
  const std::vector<std::pair<std::string, double>>& items() const { return items_; }
  void clear() { items_.clear(); }

 private:
  std::vector<std::pair<std::string, double>> items_;
};

/// Running sums of one training epoch; kept on the model's device so that training does
/// not wait for the GPU at every iteration, and stored in checkpoints (Note [Exact resume]).
struct EpochSums {
  Tensor loss;     // f64 sum of per-sample losses
  Tensor correct;  // i64
  int64_t seen = 0;
  double loss_value() const;
  int64_t correct_value() const;
  /// The sums over all ranks (a collective: every rank calls it at the same point).
  EpochSums global(dist::ProcessGroup& pg) const;
};

/// What hooks see: the position, the last iteration, the epoch's metrics.
struct State {
  int64_t epoch = 0;                 // the epoch in progress, 0-based
  int64_t epochs = 0;                // the run's length
  int64_t iteration = 0;             // completed iterations over all epochs
  int64_t epoch_iteration = 0;       // completed iterations of this epoch
  int64_t iterations_per_epoch = 0;
  double epoch_lr = 0;               // the lr the epoch started with
  const data::Batch* batch = nullptr;  // the iteration's batch (before/after_iteration only)
  Tensor output;                     // the iteration's model output
  Tensor loss;                       // the iteration's mean loss, on the device
  EpochSums sums;                    // this rank's running sums of the epoch
  int64_t epoch_skipped = 0;         // steps skipped this epoch (non-finite loss or gradients)
  int64_t epoch_images = 0;          // images trained on this epoch, over all ranks
  std::chrono::steady_clock::time_point epoch_start;
  Metrics metrics;                   // the epoch's metrics (complete in after_epoch)
  double best_acc = -1;              // best test accuracy so far (percent)
  int64_t best_epoch = 0;
  bool resumed_mid_epoch = false;

  /// The last iteration's loss as a number (waits for the device).
  double last_loss() const { return loss.defined() ? loss.item() : 0.0; }
  /// This rank's running mean loss / accuracy (0..1) of the epoch (waits for the device).
  double running_loss() const;
  double running_accuracy() const;

  /// Ends the run after the current iteration (or epoch, from after_epoch).
  void request_stop(std::string reason, std::string by = "");
  bool stop_requested() const { return stop_; }
  const std::string& stop_reason() const { return stop_reason_; }
  const std::string& stopped_by() const { return stopped_by_; }

 private:
  bool stop_ = false;
  std::string stop_reason_, stopped_by_;
};

/// A hook: code run at fixed points of Trainer::fit(). Override what you need.
class Hook {
 public:
  virtual ~Hook() = default;
  /// Shown in errors and logs.
  virtual std::string name() const = 0;
  /// Lower runs first; the built-in hooks use 10..90 (see the list above), users 50.
  virtual int priority() const { return 50; }
  virtual void before_train(Trainer&) {}
  virtual void after_train(Trainer&) {}
  virtual void before_epoch(Trainer&) {}
  virtual void after_epoch(Trainer&) {}
  virtual void before_iteration(Trainer&) {}
  virtual void after_iteration(Trainer&) {}
};
using HookPtr = std::shared_ptr<Hook>;

/// Creates `dir` (and its parents) when missing and checks that a file can be created in
/// it; throws an ember::Error naming the folder and the cause otherwise. Trainer calls it
/// on OUT before training, so a bad --out fails at once, not at the first checkpoint.
void ensure_output_dir(const std::string& dir);

struct TrainerOptions {
  int64_t epochs = 1;
  /// Folder of train.log, metrics.jsonl, checkpoints, images (created; empty: no files).
  std::string out;
  int64_t log_interval = 100;
  /// Also checkpoint every N iterations (0: at the end of each epoch only).
  int64_t save_every = 0;
  /// Also keep the last K checkpoints as OUT/checkpoint_<iteration>.ckpt (ignite's n_saved).
  int64_t keep_checkpoints = 0;
  /// Continue from this checkpoint (Note [Exact resume]).
  std::string resume;
  /// Stored in checkpoints, checked on resume.
  std::string model_name = "model";
  /// When the scheduler steps: "epoch" or "iteration" (its lengths must be in that unit).
  std::string sched_unit = "epoch";
  /// Classification: accuracy = argmax(output, 1) == labels, best.safetensors by test accuracy.
  bool accuracy = true;
  /// TensorBoard event folder (empty: none).
  std::string tensorboard;
  /// A grid of test predictions every N epochs (0: never); images in it.
  int64_t image_every = 0;
  int64_t image_count = 64;
  /// The live progress bar on a terminal (log lines every log_interval either way).
  bool progress = true;
  /// Register the built-in hooks (false: only yours; the loop itself still runs).
  bool default_hooks = true;
  /// Note [Non-finite loss]: a NaN or inf training loss stops fit() with an error naming the
  /// iteration and the last good checkpoint, before that iteration's backward and step;
  /// skip_nonfinite skips such steps instead (logged, and left out of the epoch's sums).
  bool skip_nonfinite = false;
  /// Make the loss of this (1-based, global) iteration NaN, to test the above (-1: never).
  int64_t nan_iteration = -1;
  /// Note [Mixed precision in the loop]: f32 (off), f16 (with loss scaling) or bf16.
  DType amp = DType::f32;
  /// The loss scaler's options, used when amp is f16 (enabled = false: f16 without scaling).
  optim::GradScalerOptions scaler;
  /// Clip the gradients' total 2-norm to this before each step (0: no clipping).
  double clip_grad_norm = 0;
  /// Data parallel (world size > 1).
  dist::DDPOptions ddp;
  /// The log (null: OUT/train.log and the console; ranks > 0 warnings only).
  std::shared_ptr<Logger> logger;
};

struct FitResult {
  bool stopped = false;      // a hook requested a stop
  std::string stop_reason;
  std::string stopped_by;    // the tag given to request_stop
  double best_acc = -1;
  int64_t best_epoch = 0;
  int64_t iteration = 0;
};

struct EvalResult {
  double loss = 0;  // mean loss per sample
  double acc = 0;   // percent (0 without accuracy)
  int64_t count = 0;
};

/// Evaluates `model` on this rank's share of `loader` (the sums are added over the ranks of
/// `pg`, null: this process alone). Used by EvalHook and by `--evaluate`. `amp` f16/bf16:
/// the forward pass under autocast, as in training (Note [Mixed precision in the loop]).
EvalResult evaluate(nn::Module& model, const LossFn& loss, data::DataLoader& loader,
                    dist::ProcessGroup* pg = nullptr, bool accuracy = true, DType amp = DType::f32);

class Trainer {
 public:
  /// `scheduler` and `test_loader` may be null. The loaders deliver batches on the model's
  /// device. Initializes a world-of-one process group when none exists.
  Trainer(nn::ModulePtr model, LossFn loss, std::shared_ptr<optim::Optimizer> optimizer,
          std::shared_ptr<optim::LRScheduler> scheduler, std::shared_ptr<data::DataLoader> train_loader,
          std::shared_ptr<data::DataLoader> test_loader, TrainerOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// Adds a hook (kept sorted by priority, stable).
  void register_hook(HookPtr hook);
  /// The hooks in the order they run (the built-in ones appear once fit() started).
  const std::vector<HookPtr>& hooks() const { return hooks_; }
  /// The first hook of type H, or null.
  template <class H>
  std::shared_ptr<H> find_hook() const {
    for (const auto& h : hooks_)
      if (auto p = std::dynamic_pointer_cast<H>(h)) return p;
    return nullptr;
  }

  /// Trains (resuming from options.resume when set) for the remaining epochs.
  FitResult fit();
  /// Test loss and accuracy of the current model over all ranks (a collective).
  EvalResult evaluate();

  /// Writes a checkpoint of the current position (a collective: it adds the epoch sums over
  /// ranks; rank 0 writes). `epoch_end`: the position after the epoch in progress.
  void save_checkpoint(const std::string& path, bool epoch_end = false);
  /// Restores a checkpoint (every rank reads it).
  void load_checkpoint(const std::string& path);

  State& state() { return state_; }
  const State& state() const { return state_; }
  const TrainerOptions& options() const { return opt_; }
  Logger& log() { return *logger_; }
  nn::Module& model() { return *model_; }
  nn::ModulePtr model_ptr() const { return model_; }
  optim::Optimizer& optimizer() { return *optimizer_; }
  optim::LRScheduler* scheduler() { return scheduler_.get(); }
  /// The loss scaler (null unless options.amp is f16 with scaling).
  optim::GradScaler* scaler() { return scaler_.get(); }
  data::DataLoader& train_loader() { return *train_loader_; }
  data::DataLoader* test_loader() { return test_loader_.get(); }
  const LossFn& loss_fn() const { return loss_fn_; }
  dist::ProcessGroup& process_group() { return *pg_; }
  bool is_main() const;
  int world_size() const;
  Device device() const { return device_; }
  /// OUT/name (empty when there is no output folder).
  std::string out_path(const std::string& name) const;

 private:
  enum class Point { before_train, after_train, before_epoch, after_epoch, before_iteration, after_iteration };
  void call(Point p);
  void train_step(const data::Batch& b);
  void check_finite(const Tensor& loss);

  nn::ModulePtr model_;
  LossFn loss_fn_;
  std::shared_ptr<optim::Optimizer> optimizer_;
  std::shared_ptr<optim::LRScheduler> scheduler_;
  std::shared_ptr<data::DataLoader> train_loader_, test_loader_;
  TrainerOptions opt_;
  std::shared_ptr<Logger> logger_;
  dist::ProcessGroup* pg_ = nullptr;
  std::unique_ptr<dist::DistributedDataParallel> ddp_;
  std::unique_ptr<optim::GradScaler> scaler_;
  Device device_;
  std::vector<HookPtr> hooks_;
  bool defaults_added_ = false;
  State state_;
  std::string last_good_;   // the last checkpoint written or resumed from (Note [Non-finite loss])
  int64_t skipped_ = 0;     // steps skipped for a non-finite loss (without loss scaling)
  int64_t scaler_skipped_ = 0;  // steps the loss scaler skipped
};

}  // namespace ember::train
