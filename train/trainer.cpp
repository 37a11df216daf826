// train::Trainer: the loop, checkpoints and exact resume (Note [Exact resume] in trainer.h).
#include "train/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "autograd/autocast.h"
#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "dist/dist.h"
#include "io/safetensors.h"
#include "nn/clip_grad.h"
#include "tensor/generator.h"
#include "train/hooks.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ember::train {

// ---- Metrics, EpochSums, State

void Metrics::set(const std::string& key, double value) {
  for (auto& kv : items_)
    if (kv.first == key) {
      kv.second = value;
      return;
    }
  items_.emplace_back(key, value);
}

bool Metrics::has(const std::string& key) const {
  for (const auto& kv : items_)
    if (kv.first == key) return true;
  return false;
}

double Metrics::get(const std::string& key) const {
  for (const auto& kv : items_)
    if (kv.first == key) return kv.second;
  EMBER_THROW("metrics: no '", key, "' this epoch");
}

double Metrics::get(const std::string& key, double fallback) const {
  for (const auto& kv : items_)
    if (kv.first == key) return kv.second;
  return fallback;
}

double EpochSums::loss_value() const { return loss.defined() ? loss.item() : 0.0; }
int64_t EpochSums::correct_value() const { return correct.defined() ? correct.item<int64_t>() : 0; }

EpochSums EpochSums::global(dist::ProcessGroup& pg) const {
  if (pg.world_size() == 1) return *this;
  std::vector<double> v = dist::allreduce_sum(pg, {loss_value(), double(correct_value()), double(seen)});
  EpochSums g;
  g.seen = int64_t(v[2]);
  if (g.seen > 0) {
    g.loss = scalar_tensor(v[0], {.dtype = DType::f64});
    g.correct = scalar_tensor(v[1], {.dtype = DType::i64});
  }
  return g;
}

double State::running_loss() const { return sums.seen ? sums.loss_value() / double(sums.seen) : 0.0; }
double State::running_accuracy() const {
  return sums.seen ? double(sums.correct_value()) / double(sums.seen) : 0.0;
}

void State::request_stop(std::string reason, std::string by) {
  stop_ = true;
  stop_reason_ = std::move(reason);
  stopped_by_ = std::move(by);
}

// ---- evaluation

EvalResult evaluate(nn::Module& model, const LossFn& loss_fn, data::DataLoader& loader, dist::ProcessGroup* pg,
                    bool accuracy, DType amp) {
  NoGradGuard no_grad;
  AutocastGuard autocast(amp, /*enabled=*/amp != DType::f32);
  model.eval();
  loader.set_epoch(0);
  Tensor loss_sum, correct;
  int64_t count = 0;
  while (auto b = loader.next()) {
    Tensor out = model(b->images());
    Tensor l = loss_fn(out, b->labels()).to(DType::f64) * double(b->size());
    loss_sum = loss_sum.defined() ? loss_sum + l : l;
    if (accuracy) {
      Tensor c = sum(eq(argmax(out, 1), b->labels()));
      correct = correct.defined() ? correct + c : c;
    }
    count += b->size();
  }
  std::vector<double> sums = {loss_sum.defined() ? loss_sum.item() : 0.0,
                              correct.defined() ? double(correct.item<int64_t>()) : 0.0, double(count)};
  if (pg && pg->world_size() > 1) sums = dist::allreduce_sum(*pg, sums);
  EvalResult r;
  r.count = int64_t(sums[2]);
  if (r.count > 0) {
    r.loss = sums[0] / double(r.count);
    r.acc = 100.0 * sums[1] / double(r.count);
  }
  return r;
}

// ---- Trainer

void ensure_output_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) EMBER_THROW("output folder '", dir, "' cannot be created: ", ec.message());
  EMBER_CHECK(fs::is_directory(dir, ec), "output folder '", dir, "' is not a folder");
  // Permission bits do not tell (root ignores them; a read-only mount does not show in
  // them): create and remove a probe file, so that a folder nothing can be written to fails
  // here, before any work, not at the first checkpoint an epoch later.
  std::string probe = (fs::path(dir) / (".ember_write_probe." + std::to_string(::getpid()))).string();
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int e = errno;
    EMBER_THROW("output folder '", dir, "' is not writable: ", std::strerror(e));
  }
  ::close(fd);
  ::unlink(probe.c_str());
}

Trainer::Trainer(nn::ModulePtr model, LossFn loss, std::shared_ptr<optim::Optimizer> optimizer,
                 std::shared_ptr<optim::LRScheduler> scheduler, std::shared_ptr<data::DataLoader> train_loader,
                 std::shared_ptr<data::DataLoader> test_loader, TrainerOptions options)
    : model_(std::move(model)),
      loss_fn_(std::move(loss)),
      optimizer_(std::move(optimizer)),
      scheduler_(std::move(scheduler)),
      train_loader_(std::move(train_loader)),
      test_loader_(std::move(test_loader)),
      opt_(std::move(options)) {
  EMBER_CHECK(model_ != nullptr, "Trainer: the model is null");
  EMBER_CHECK(static_cast<bool>(loss_fn_), "Trainer: the loss function is empty");
  EMBER_CHECK(optimizer_ != nullptr, "Trainer: the optimizer is null");
  EMBER_CHECK(train_loader_ != nullptr, "Trainer: the training loader is null");
  EMBER_CHECK(opt_.epochs >= 0, "Trainer: epochs must be >= 0, got ", opt_.epochs);
  EMBER_CHECK(opt_.log_interval > 0, "Trainer: log_interval must be positive, got ", opt_.log_interval);
  EMBER_CHECK(opt_.save_every >= 0 && opt_.keep_checkpoints >= 0, "Trainer: save_every and keep_checkpoints must be >= 0");
  EMBER_CHECK(opt_.sched_unit == "epoch" || opt_.sched_unit == "iteration",
              "Trainer: sched_unit must be 'epoch' or 'iteration', got '", opt_.sched_unit, "'");
  EMBER_CHECK(opt_.amp == DType::f32 || opt_.amp == DType::f16 || opt_.amp == DType::bf16,
              "Trainer: amp must be f32 (off), f16 or bf16, got ", dtype_name(opt_.amp));
  EMBER_CHECK(opt_.clip_grad_norm >= 0 && std::isfinite(opt_.clip_grad_norm),
              "Trainer: clip_grad_norm must be >= 0 and finite, got ", opt_.clip_grad_norm);
  if (opt_.amp == DType::f16 && opt_.scaler.enabled) scaler_ = std::make_unique<optim::GradScaler>(opt_.scaler);
  pg_ = dist::is_initialized() ? &dist::default_group() : &dist::init_process_group();
  device_ = model_->device();
  if (!opt_.out.empty() && is_main()) {
    ensure_output_dir(opt_.out);
    // What a writer killed mid-write left behind (Note [Crash-safe checkpoints]): the
    // temporary files of last.ckpt, best.safetensors and the numbered copies.
    for (const auto& e : fs::directory_iterator(opt_.out)) {
      std::string n = e.path().filename().string();
      bool ours = n.rfind("last.ckpt.tmp", 0) == 0 || n.rfind("best.safetensors.tmp", 0) == 0 ||
                  (n.rfind("checkpoint_", 0) == 0 && n.find(".ckpt.tmp") != std::string::npos);
      if (ours && e.is_regular_file()) {
        std::error_code ec;
        fs::remove(e.path(), ec);
      }
    }
  }
  logger_ = opt_.logger;
  if (!logger_) logger_ = std::make_shared<Logger>(is_main() ? out_path("train.log") : "", !is_main());
}

Trainer::~Trainer() = default;

bool Trainer::is_main() const { return pg_->is_main(); }
int Trainer::world_size() const { return pg_->world_size(); }

std::string Trainer::out_path(const std::string& name) const {
  return opt_.out.empty() ? std::string() : (fs::path(opt_.out) / name).string();
}

void Trainer::register_hook(HookPtr hook) {
  EMBER_CHECK(hook != nullptr, "Trainer::register_hook: the hook is null");
  auto pos = std::upper_bound(hooks_.begin(), hooks_.end(), hook,
                              [](const HookPtr& a, const HookPtr& b) { return a->priority() < b->priority(); });
  hooks_.insert(pos, std::move(hook));
}

void Trainer::call(Point p) {
  static const char* names[] = {"before_train", "after_train",      "before_epoch",
                                "after_epoch",  "before_iteration", "after_iteration"};
  for (size_t i = 0; i < hooks_.size(); ++i) {
    Hook& h = *hooks_[i];
    try {
      switch (p) {
        case Point::before_train: h.before_train(*this); break;
        case Point::after_train: h.after_train(*this); break;
        case Point::before_epoch: h.before_epoch(*this); break;
        case Point::after_epoch: h.after_epoch(*this); break;
        case Point::before_iteration: h.before_iteration(*this); break;
        case Point::after_iteration: h.after_iteration(*this); break;
      }
    } catch (const std::exception& e) {
      throw Error("hook " + h.name() + " failed in " + names[int(p)] + " (epoch " + std::to_string(state_.epoch + 1) +
                  ", iteration " + std::to_string(state_.iteration) + "): " + e.what());
    }
  }
}

// Note [Non-finite loss]: one scalar read per iteration (as GradScaler's check); with several
// ranks an allreduce makes every rank take the same decision.
void Trainer::check_finite(const Tensor& loss) {
  double v = loss.item();
  bool finite = std::isfinite(v);
  if (world_size() > 1) finite = dist::allreduce_sum(*pg_, {finite ? 0.0 : 1.0})[0] == 0.0;
  if (finite) return;
  const int64_t it = state_.iteration + 1, ep = state_.epoch + 1;
  if (!opt_.skip_nonfinite)
    EMBER_THROW("iteration ", it, " (epoch ", ep, "): the training loss is ", v,
                " (not finite); stopped before its optimizer step. ",
                last_good_.empty() ? std::string("No checkpoint was written yet")
                                   : "The last good checkpoint is " + last_good_,
                " (resume with --resume, e.g. with a lower --lr); --skip-nonfinite skips such steps");
  ++skipped_;
  logger_->warn(strf("iteration %lld (epoch %lld): the training loss is %g; its step was skipped (--skip-nonfinite)",
                     (long long)it, (long long)ep, v));
}

void Trainer::train_step(const data::Batch& b) {
  Tensor out, loss;
  {
    // Note [Mixed precision in the loop]: forward and loss under autocast, backward outside.
    AutocastGuard amp(opt_.amp, /*enabled=*/opt_.amp != DType::f32);
    out = ddp_ ? (*ddp_)(b.images()) : (*model_)(b.images());
    loss = loss_fn_(out, b.labels());
  }
  if (state_.iteration + 1 == opt_.nan_iteration) loss = loss * std::nan("");
  if (!scaler_) {  // under loss scaling a non-finite loss gives non-finite gradients: the scaler skips
    const int64_t before = skipped_;
    check_finite(loss);
    if (skipped_ != before) {  // skipped: no step, not in the sums
      ++state_.epoch_skipped;
      return;
    }
  }
  if (ddp_) ddp_->zero_grad();  // keeps the gradients as views of the buckets
  else model_->zero_grad();
  (scaler_ ? scaler_->scale(loss) : loss).backward();
  if (ddp_) ddp_->finish();
  if (opt_.clip_grad_norm > 0) {
    if (scaler_) scaler_->unscale_(*optimizer_);
    nn::clip_grad_norm_(optimizer_->params(), opt_.clip_grad_norm);
  }
  bool stepped = true;
  if (scaler_) {
    stepped = scaler_->step(*optimizer_);
    scaler_->update();
  } else {
    optimizer_->step();
  }
  if (!stepped) {  // the gradients held an inf/NaN; the scale has backed off
    ++scaler_skipped_;
    ++state_.epoch_skipped;
    return;
  }
  NoGradGuard no_grad;
  EpochSums& sums = state_.sums;
  Tensor l = loss.detach().to(DType::f64) * double(b.size());
  sums.loss = sums.loss.defined() ? sums.loss + l : l;
  if (opt_.accuracy) {
    Tensor c = sum(eq(argmax(out.detach(), 1), b.labels()));
    sums.correct = sums.correct.defined() ? sums.correct + c : c;
  }
  sums.seen += b.size();
  state_.output = out.detach();
  state_.loss = loss.detach();
}

EvalResult Trainer::evaluate() {
  EMBER_CHECK(test_loader_ != nullptr, "Trainer::evaluate: no test loader was given");
  return train::evaluate(*model_, loss_fn_, *test_loader_, pg_, opt_.accuracy, opt_.amp);
}

FitResult Trainer::fit() {
  if (opt_.default_hooks && !defaults_added_) {
    defaults_added_ = true;
    if (scheduler_) register_hook(std::make_shared<LRSchedulerHook>());
    if (test_loader_) register_hook(std::make_shared<EvalHook>());
    register_hook(std::make_shared<ProgressHook>());
    register_hook(std::make_shared<LogHook>());
    if (!opt_.out.empty()) register_hook(std::make_shared<MetricsHook>());
    if (!opt_.tensorboard.empty()) register_hook(std::make_shared<TensorBoardHook>(opt_.tensorboard));
    if (opt_.image_every > 0 && test_loader_)
      register_hook(std::make_shared<ImageGridHook>(opt_.image_every, opt_.image_count));
    if (!opt_.out.empty()) register_hook(std::make_shared<CheckpointHook>());
  }
  State& st = state_;
  st.epochs = opt_.epochs;
  st.iterations_per_epoch = train_loader_->num_batches();
  logger_->info(strf("%lld parameters; %lld training / %lld test samples; batch %lld, %lld iterations per epoch",
                     (long long)model_->num_parameters(), (long long)train_loader_->dataset().size(),
                     (long long)(test_loader_ ? test_loader_->dataset().size() : 0),
                     (long long)train_loader_->options().batch_size, (long long)st.iterations_per_epoch));
  bool mid_epoch = false;
  if (!opt_.resume.empty()) {
    // Every rank reads the checkpoint (on a shared file system, or copied to each node).
    load_checkpoint(opt_.resume);
    last_good_ = opt_.resume;
    if (!is_main()) st.sums = EpochSums();  // rank 0 carries the global sums
    mid_epoch = train_loader_->state().batch > 0;
    logger_->info(strf("resumed from %s: epoch %lld, iteration %lld%s", opt_.resume.c_str(), (long long)st.epoch + 1,
                       (long long)st.iteration, mid_epoch ? " (mid-epoch)" : ""));
  }
  // Data parallel: DDP broadcasts rank 0's weights now and averages gradients in backward.
  if (world_size() > 1 && !ddp_) ddp_ = std::make_unique<dist::DDP>(model_, opt_.ddp, pg_);

  call(Point::before_train);
  for (; st.epoch < opt_.epochs && !st.stop_requested(); ++st.epoch) {
    st.epoch_start = std::chrono::steady_clock::now();
    if (!mid_epoch) {
      train_loader_->set_epoch(st.epoch);
      st.sums = EpochSums();
      st.epoch_skipped = 0;
    }
    st.resumed_mid_epoch = mid_epoch;
    mid_epoch = false;
    st.epoch_iteration = train_loader_->state().batch;
    st.epoch_images = 0;
    st.metrics.clear();
    model_->train();
    st.epoch_lr = optimizer_->lr();
    call(Point::before_epoch);
    bool cut = false;
    while (auto b = train_loader_->next()) {
      st.batch = &*b;
      call(Point::before_iteration);
      train_step(*b);
      ++st.iteration;
      st.epoch_iteration = train_loader_->state().batch;
      if (st.epoch_iteration == 0) st.epoch_iteration = st.iterations_per_epoch;
      st.epoch_images += b->size() * world_size();  // images over all ranks
      call(Point::after_iteration);
      st.batch = nullptr;
      if (st.stop_requested()) {
        cut = true;
        break;
      }
    }
    st.batch = nullptr;
    if (cut) break;
    double train_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - st.epoch_start).count();
    st.sums = st.sums.global(*pg_);
    const EpochSums& s = st.sums;
    st.metrics.set("epoch", double(st.epoch + 1));
    st.metrics.set("iteration", double(st.iteration));
    st.metrics.set("train_loss", s.seen ? s.loss_value() / double(s.seen) : 0.0);
    if (opt_.accuracy) st.metrics.set("train_acc", s.seen ? 100.0 * double(s.correct_value()) / double(s.seen) : 0.0);
    st.metrics.set("lr", st.epoch_lr);
    st.metrics.set("train_images_per_second", train_secs > 0 ? double(s.seen) / train_secs : 0.0);
    st.metrics.set("train_samples", double(s.seen));
    st.metrics.set("world_size", double(world_size()));
    if (scaler_) st.metrics.set("loss_scale", scaler_->get_scale());
    if (scaler_ || opt_.skip_nonfinite) st.metrics.set("skipped_steps", double(st.epoch_skipped));
    call(Point::after_epoch);
    st.sums = EpochSums();
  }
  call(Point::after_train);
  if (skipped_ > 0)
    logger_->warn(strf("%lld step(s) skipped for a non-finite loss (--skip-nonfinite)", (long long)skipped_));
  if (scaler_)
    logger_->info(strf("loss scaling: %lld step(s) skipped for inf/NaN gradients; final scale %g",
                       (long long)scaler_skipped_, scaler_->get_scale()));
  FitResult r;
  r.stopped = st.stop_requested();
  r.stop_reason = st.stop_reason();
  r.stopped_by = st.stopped_by();
  r.best_acc = st.best_acc;
  r.best_epoch = st.best_epoch;
  r.iteration = st.iteration;
  return r;
}

// ---- checkpoints (Note [Exact resume])

namespace {
constexpr int kCheckpointVersion = 1;

/// An integer field of the checkpoint metadata, in [lo, hi]: a JSON integer, or a float that
/// holds an integer (a converted out-of-range float would be undefined behaviour).
int64_t meta_int(const json& j, const char* key, const std::string& path, int64_t lo,
                 int64_t hi = int64_t(1) << 53) {
  const json& v = j.at(key);
  bool ok = false;
  int64_t r = 0;
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    ok = u <= uint64_t(hi);
    r = ok ? int64_t(u) : 0;
  } else if (v.is_number_integer()) {
    r = v.get<int64_t>();
    ok = true;
  } else if (v.is_number_float()) {
    double d = v.get<double>();
    ok = std::isfinite(d) && d == std::floor(d) && d >= double(lo) && d <= double(hi);
    r = ok ? int64_t(d) : 0;
  } else {
    EMBER_THROW("--resume ", path, ": corrupt checkpoint metadata: '", key, "' must be an integer, got ", v.dump());
  }
  EMBER_CHECK(ok && r >= lo && r <= hi, "--resume ", path, ": corrupt checkpoint metadata: '", key, "' is ",
              v.dump(), ", expected an integer in [", lo, ", ", hi, "]");
  return r;
}

uint64_t meta_uint(const json& j, const char* key, const std::string& path) {
  const json& v = j.at(key);
  EMBER_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "--resume ", path,
              ": corrupt checkpoint metadata: '", key, "' must be a non-negative integer, got ", v.dump());
  return v.get<uint64_t>();
}

/// The run's position as stored in a checkpoint.
struct RunState {
  int64_t epoch = 0;      // the epoch in progress (0-based)
  int64_t iteration = 0;  // completed training iterations, over all epochs
  double best_acc = -1;
  int64_t best_epoch = 0;
};
}  // namespace

void Trainer::save_checkpoint(const std::string& path, bool epoch_end) {
  RunState st{state_.epoch, state_.iteration, state_.best_acc, state_.best_epoch};
  EpochSums sums;
  if (epoch_end) ++st.epoch;  // the sums of a finished epoch are not carried
  else sums = state_.sums.global(*pg_);
  last_good_ = path;  // every rank names it (rank 0 writes it)
  if (!is_main()) return;
  nn::Module& model = *model_;
  optim::Optimizer& opt = *optimizer_;
  const data::DataLoader& loader = *train_loader_;
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [k, t] : model.state_dict()) tensors.emplace_back("model." + k, t);
  optim::OptimizerState os = opt.state_dict();
  for (const auto& [k, t] : os.tensors) tensors.emplace_back("optim." + k, t);
  data::LoaderState ls = loader.state();
  GeneratorState rng = default_generator().state();
  json meta = {
      {"format_version", kCheckpointVersion},
      {"model", opt_.model_name},
      {"epoch", st.epoch},
      {"iteration", st.iteration},
      {"best_acc", st.best_acc},
      {"best_epoch", st.best_epoch},
      {"loader", {{"epoch", ls.epoch}, {"batch", ls.batch}, {"seed", ls.seed}}},
      {"rng", {{"seed", rng.seed}, {"offset", rng.offset}}},
      {"epoch_sums",
       {{"loss", sums.loss_value()}, {"correct", sums.correct_value()}, {"seen", sums.seen},
        {"skipped", epoch_end ? 0 : state_.epoch_skipped}}},
      {"amp", opt_.amp == DType::f32 ? "none" : dtype_name(opt_.amp)},
      {"optimizer", os.scalars},
      {"scheduler", scheduler_ ? scheduler_->state_dict() : optim::ScalarState{}},
  };
  if (scaler_) meta["grad_scaler"] = scaler_->state_dict();
  // Note [Crash-safe checkpoints]: save_safetensors writes PATH.tmp.<pid>, fsyncs it, renames
  // it over PATH and fsyncs the folder, so PATH is always the previous checkpoint or the new
  // one, whole, even if the process is killed or the machine loses power mid-write; a write
  // that fails (ENOSPC, EIO) removes the temporary file and throws naming it and the cause,
  // with PATH left as it was. tests/crash_safety_test.cpp kills runs at random moments.
  save_safetensors(path, tensors, {{"ember", meta.dump()}, {kConvAlgosKey, conv_algorithm_choices()}});
}

void load_conv_algorithm_choices(const SafetensorsFile& f) {
  auto it = f.metadata.find(kConvAlgosKey);
  if (it != f.metadata.end()) ember::load_conv_algorithm_choices(it->second);
}

void Trainer::load_checkpoint(const std::string& path) {
  const std::string& model_name = opt_.model_name;
  nn::Module& model = *model_;
  optim::Optimizer& opt = *optimizer_;
  data::DataLoader& loader = *train_loader_;
  RunState st;
  EpochSums& sums = state_.sums;
  Device device = device_;
  SafetensorsFile f = load_safetensors(path);
  load_conv_algorithm_choices(f);
  auto it = f.metadata.find("ember");
  EMBER_CHECK(it != f.metadata.end(), "--resume ", path,
              ": not an ember training checkpoint (no 'ember' entry in its metadata); "
              "to start from plain weights, train from scratch or use --evaluate");
  json meta;
  try {
    meta = json::parse(it->second);
    const json& fv = meta.at("format_version");
    EMBER_CHECK(fv.is_number_integer() && fv.get<int64_t>() == kCheckpointVersion, "--resume ", path,
                ": checkpoint format version ", fv.dump(), ", this build reads ", kCheckpointVersion);
    EMBER_CHECK(meta.at("model").get<std::string>() == model_name, "--resume ", path,
                ": the checkpoint is of model '", meta.at("model").get<std::string>(), "' but --model is '",
                model_name, "'");
    nn::StateDict msd, osd;
    for (const auto& [k, t] : f.tensors) {
      if (k.rfind("model.", 0) == 0) msd.insert(k.substr(6), t);
      else if (k.rfind("optim.", 0) == 0) osd.insert(k.substr(6), t.to(device));
    }
    model.load_state_dict(msd);
    optim::OptimizerState os{osd, meta.at("optimizer").get<optim::ScalarState>()};
    opt.load_state_dict(os);
    if (scheduler_) scheduler_->load_state_dict(meta.at("scheduler").get<optim::ScalarState>());
    // Every number is range-checked before it is converted (Note [Exact resume]).
    const json& l = meta.at("loader");
    const int64_t l_epoch = meta_int(l, "epoch", path, 0), l_batch = meta_int(l, "batch", path, 0);
    const uint64_t l_seed = meta_uint(l, "seed", path);
    const json& rng = meta.at("rng");
    const uint64_t rng_seed = meta_uint(rng, "seed", path), rng_offset = meta_uint(rng, "offset", path);
    const int64_t epoch = meta_int(meta, "epoch", path, 0);
    const int64_t iteration = meta_int(meta, "iteration", path, 0);
    const int64_t best_epoch = meta_int(meta, "best_epoch", path, 0);
    const double best_acc = meta.at("best_acc").get<double>();
    EMBER_CHECK(std::isfinite(best_acc), "--resume ", path, ": corrupt checkpoint metadata: 'best_acc' is ", best_acc);
    const json& s = meta.at("epoch_sums");
    const int64_t seen = meta_int(s, "seen", path, 0);
    const int64_t correct = meta_int(s, "correct", path, 0);
    const double loss_sum = s.at("loss").get<double>();
    const int64_t skipped = s.contains("skipped") ? meta_int(s, "skipped", path, 0) : 0;
    // The scaler continues where it was (Note [Mixed precision in the loop]); a checkpoint
    // of a run without it (or an older one) leaves it at its initial scale.
    if (scaler_ && meta.contains("grad_scaler"))
      scaler_->load_state_dict(meta.at("grad_scaler").get<optim::ScalarState>());
    loader.load_state({l_epoch, l_batch, l_seed});
    default_generator().set_state({rng_seed, rng_offset});
    st.epoch = epoch;
    st.iteration = iteration;
    st.best_acc = best_acc;
    st.best_epoch = best_epoch;
    sums.seen = seen;
    state_.epoch_skipped = skipped;
    if (sums.seen > 0) {
      sums.loss = scalar_tensor(loss_sum, {.dtype = DType::f64, .device = device});
      sums.correct = scalar_tensor(double(correct), {.dtype = DType::i64, .device = device});
    }
  } catch (const json::exception& e) {
    EMBER_THROW("--resume ", path, ": corrupt checkpoint metadata: ", e.what());
  }
  state_.epoch = st.epoch;
  state_.iteration = st.iteration;
  state_.best_acc = st.best_acc;
  state_.best_epoch = st.best_epoch;
}

}  // namespace ember::train
