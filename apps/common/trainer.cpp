// The classifier apps on top of train::Trainer: flags -> model, loaders, SGD, schedule,
// options; the trainer does the loop, logs, metrics, TensorBoard, pictures, checkpoints and
// exact resume (Note [Exact resume] in train/trainer.h), data parallel under mpirun/srun or
// ember's own launcher (--nproc-per-node).
#include "apps/common/trainer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/loader.h"
#include "dist/dist.h"
#include "ember.h"
#include "io/safetensors.h"
#include "nn/models.h"
#include "optim/lr_scheduler.h"
#include "optim/sgd.h"
#include "train/train.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ember::app {

namespace {

Device resolve_device(const std::string& spec, const dist::ProcessGroup& pg) {
  // Each process of a data-parallel job takes the GPU of its local rank.
  if (spec == "auto") return pg.default_device();
  Device d(spec);  // throws on a malformed spec
  if (spec == "cuda" && pg.world_size() > 1 && cuda::device_count() > 0)
    d = Device(DeviceType::cuda, pg.local_rank() % cuda::device_count());
  if (d.is_cuda()) {
    EMBER_CHECK(EMBER_WITH_CUDA, "--device ", spec,
                ": this build of ember has no CUDA support (rebuild on a machine with the CUDA toolkit)");
    int n = cuda::device_count();
    EMBER_CHECK(d.index < n, "--device ", spec, ": ",
                n == 0 ? std::string("no CUDA device is available on this machine")
                       : "only " + std::to_string(n) + " CUDA device(s) exist");
  }
  return d;
}

/// The schedule of the flags. Lengths are given in epochs; with --sched-unit iteration the
/// scheduler steps every iteration and they are converted to iterations.
optim::SchedulerConfig scheduler_config(const TrainConfig& cfg, int64_t iters_per_epoch) {
  const int64_t k = cfg.sched_unit == "iteration" ? std::max<int64_t>(1, iters_per_epoch) : 1;
  optim::SchedulerConfig s;
  s.kind = cfg.scheduler;
  s.total_steps = cfg.epochs * k;
  s.warmup_steps = cfg.warmup_epochs * k;
  s.step_size = (cfg.step_size > 0 ? cfg.step_size : std::max<int64_t>(1, cfg.epochs / 3)) * k;
  s.gamma = cfg.gamma;
  for (int64_t m : parse_milestones(cfg.milestones)) s.milestones.push_back(m * k);
  return s;
}

/// --crash-iteration N: stops the run right after iteration N (after that iteration's
/// checkpoint), so that tests can resume it.
class CrashHook : public train::Hook {
 public:
  explicit CrashHook(int64_t at) : at_(at) {}
  std::string name() const override { return "CrashHook"; }
  int priority() const override { return 100; }  // after the checkpoints
  void after_iteration(train::Trainer& t) override {
    if (t.state().iteration == at_) t.state().request_stop("as asked by --crash-iteration", "crash-iteration");
  }

 private:
  int64_t at_;
};

Tensor classification_loss(const Tensor& logits, const Tensor& labels) { return cross_entropy(logits, labels); }

/// --amp on a GPU without 16-bit support (f16 needs compute capability 5.3, bf16 8.0).
void check_amp_supported(DType amp, Device device) {
  if (amp == DType::f32 || !device.is_cuda()) return;  // the CPU computes 16-bit ops in f32
  auto [major, minor] = cuda::device_capability(device.index);
  const int cc = major * 10 + minor, need = amp == DType::bf16 ? 80 : 53;
  EMBER_CHECK(cc >= need, "--amp ", amp == DType::bf16 ? "bf16" : "fp16", ": ", device.str(), " (",
              cuda::device_name(device.index), ", compute capability ", major, ".", minor,
              ") has no ", amp == DType::bf16 ? "bf16" : "fp16", " arithmetic (needs ", need / 10, ".", need % 10,
              "); use --amp ", amp == DType::bf16 ? "fp16 or none" : "none");
}

int train_or_evaluate(const TrainConfig& cfg, const std::string& app_name,
                      const std::function<Datasets(const TrainConfig&)>& make_datasets) {
  bool evaluating = !cfg.evaluate.empty();
  dist::ProcessGroup& pg = dist::init_process_group();
  const bool main_rank = pg.is_main();
  const int world = pg.world_size();
  Device device = resolve_device(cfg.device, pg);
  if (!evaluating && main_rank) train::ensure_output_dir(cfg.out);  // before any work
  auto log = std::make_shared<train::Logger>(
      evaluating || !main_rank ? "" : (fs::path(cfg.out) / "train.log").string(), !main_rank);
  if (!evaluating && main_rank) {
    std::ofstream(fs::path(cfg.out) / "args.yaml") << config_to_yaml(cfg);
    log->info(app_name + " " + cfg.model + " on " + device.str() + " | out " + cfg.out);
  }
  if (world > 1)
    log->info(train::strf("data parallel: %d processes, batch %lld per process, effective batch %lld; gradients in "
                          "%g MB buckets%s",
                          world, (long long)cfg.batch_size, (long long)(cfg.batch_size * world), cfg.bucket_mb,
                          cfg.grad_compression == "fp16" ? ", sent as fp16" : ""));
  else if (cfg.grad_compression != "none")
    log->info("--grad-compression " + cfg.grad_compression + " has no effect in a single process");
  manual_seed(cfg.seed);
  set_deterministic(cfg.deterministic);
  if (cfg.deterministic)
    log->info("deterministic: cuDNN algorithms deterministic and chosen without timing, scatter-add without atomics, "
              "CPU convolution gradients and long sums independent of the thread count");

  Datasets ds = make_datasets(cfg);
  if (cfg.limit_train > 0) ds.train = data::Subset::head(ds.train, cfg.limit_train);
  if (cfg.limit_test > 0) ds.test = data::Subset::head(ds.test, cfg.limit_test);

  const DType amp = cfg.amp == "fp16" ? DType::f16 : cfg.amp == "bf16" ? DType::bf16 : DType::f32;
  check_amp_supported(amp, device);  // a clear error, never a silent f32 run
  if (!evaluating && amp != DType::f32)
    log->info("mixed precision: " + cfg.amp + " autocast, f32 master weights" +
              (amp == DType::f16 ? train::strf(", dynamic loss scaling (initial scale %g, growth every %lld steps)",
                                                cfg.loss_scale, (long long)cfg.loss_scale_growth_interval)
                                   : std::string(", no loss scaling")) +
              (device.is_cpu() ? " (CPU: 16-bit results, f32 arithmetic inside each op)" : ""));

  nn::ModulePtr model = nn::make_model(cfg.model);
  model->to(device);
  if (cfg.sync_bn) {
    int n = dist::convert_sync_batchnorm(*model, &pg);
    if (n == 0) log->info("--sync-bn: " + cfg.model + " has no BatchNorm layers");
    else if (world > 1) log->info(train::strf("--sync-bn: %d BatchNorm layers use the statistics of all %d processes", n, world));
    else log->info("--sync-bn has no effect in a single process");
  }

  // Note [Batches on the device] (data/augment.h): on a GPU the datasets stay there and every
  // batch is gathered, augmented and normalized by kernels, unless --no-data-on-device. The
  // images are the same bits either way.
  const bool on_device = device.is_cuda() && !cfg.no_data_on_device;
  const bool train_on_device = on_device && ds.train->supports_device_batches();
  const bool test_on_device = on_device && ds.test->supports_device_batches();
  if (!evaluating && on_device)
    log->info(std::string("data on ") + device.str() + ": " +
              (train_on_device && test_on_device
                   ? "both datasets resident, batches made there (--no-data-on-device: on the CPU)"
                   : train_on_device ? "training set resident (the test set cannot be; its batches come from the CPU)"
                   : test_on_device  ? "test set resident (the training set cannot be; its batches come from the CPU)"
                                     : "neither dataset can be resident; batches come from the CPU"));
  auto test_loader = std::make_shared<data::DataLoader>(
      ds.test, data::DataLoaderOptions{.batch_size = cfg.test_batch_size, .num_workers = int(cfg.workers), .device = device,
                                       .dataset_on_device = test_on_device},
      std::make_shared<dist::ShardSampler>(ds.test->size(), pg.rank(), world));
  if (evaluating) {
    // Plain weights (best.safetensors), or the model part of a training checkpoint
    // (last.ckpt: "model."-prefixed tensors beside the optimizer's, metadata "ember").
    SafetensorsFile f = load_safetensors(cfg.evaluate);
    train::load_conv_algorithm_choices(f);  // the training run's algorithms: the same bits
    nn::StateDict weights;
    if (f.metadata.count("ember")) {
      for (const auto& [k, t] : f.tensors)
        if (k.rfind("model.", 0) == 0) weights.insert(k.substr(6), t);
    } else {
      weights = nn::StateDict(f.tensors);
    }
    model->load_state_dict(weights);
    train::EvalResult r = train::evaluate(*model, classification_loss, *test_loader, &pg, true, amp);
    if (main_rank)
      std::printf("%s\n", json{{"test_loss", r.loss}, {"test_acc", r.acc}, {"test_samples", r.count}}.dump().c_str());
    return 0;
  }

  // Rank r's shard of each epoch's permutation (in a world of one: all of it, in the order
  // RandomSampler(seed) would give).
  auto train_loader = std::make_shared<data::DataLoader>(
      ds.train, data::DataLoaderOptions{.batch_size = cfg.batch_size, .seed = cfg.seed, .num_workers = int(cfg.workers),
                                        .device = device, .dataset_on_device = train_on_device},
      std::make_shared<data::DistributedSampler>(ds.train->size(), pg.rank(), world, /*shuffle=*/true, cfg.seed));
  auto opt = std::make_shared<optim::SGD>(model->parameters(),
                                          optim::SGDOptions{.lr = cfg.lr, .momentum = cfg.momentum,
                                                            .weight_decay = cfg.weight_decay, .nesterov = cfg.nesterov});
  std::shared_ptr<optim::LRScheduler> sched =
      optim::make_scheduler(*opt, scheduler_config(cfg, train_loader->num_batches()));

  train::TrainerOptions to;
  to.epochs = cfg.epochs;
  to.out = cfg.out;
  to.log_interval = cfg.log_interval;
  to.save_every = cfg.save_every;
  to.keep_checkpoints = cfg.keep_checkpoints;
  to.resume = cfg.resume;
  to.model_name = cfg.model;
  to.sched_unit = cfg.sched_unit;
  to.tensorboard = cfg.no_tensorboard ? "" : (cfg.tensorboard.empty() ? (fs::path(cfg.out) / "tb").string() : cfg.tensorboard);
  to.image_every = cfg.image_every;
  to.image_count = cfg.image_count;
  to.skip_nonfinite = cfg.skip_nonfinite;
  to.nan_iteration = cfg.nan_iteration;
  to.amp = amp;
  to.scaler.init_scale = cfg.loss_scale;
  to.scaler.growth_interval = cfg.loss_scale_growth_interval;
  to.clip_grad_norm = cfg.clip_grad_norm;
  to.ddp = dist::DDPOptions{.bucket_mb = cfg.bucket_mb, .compression = dist::parse_grad_compression(cfg.grad_compression)};
  to.logger = log;
  train::Trainer trainer(model, classification_loss, opt, sched, train_loader, test_loader, to);
  if (cfg.crash_iteration >= 0) trainer.register_hook(std::make_shared<CrashHook>(cfg.crash_iteration));
  train::FitResult r = trainer.fit();
  return r.stopped && r.stopped_by == "crash-iteration" ? 3 : 0;
}

}  // namespace

std::string resolve_data_dir(const TrainConfig& cfg, const std::string& name) {
  if (!cfg.data.empty()) {
    EMBER_CHECK(fs::is_directory(cfg.data), "--data ", cfg.data, ": no such directory");
    return cfg.data;
  }
  std::vector<std::string> tried = {"data/" + name, "../shared/data/" + name, "../../shared/data/" + name};
  for (const auto& p : tried)
    if (fs::is_directory(p)) return p;
  std::string list;
  for (const auto& p : tried) list += " " + p;
  EMBER_THROW("no ", name, " data found (looked in", list, "); run `scripts/get_data.sh ", name,
              "` or pass --data DIR");
}

int run_classifier_app(int argc, char** argv, const AppSpec& spec,
                       const std::function<Datasets(const TrainConfig&)>& make_datasets) {
  const std::string& app_name = spec.name;
  TrainConfig cfg = spec.defaults;
  try {
    if (!parse_config(argc, argv, spec, cfg)) return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s\n(run `%s --help` for the options)\n", app_name.c_str(), e.what(),
                 app_name.c_str());
    return 2;
  }
  // --nproc-per-node: this process is the launcher; the workers (the same command, with
  // EMBER_LAUNCH_WORKER=1) do the work (Note [Local launcher] in dist/launch.h).
  if (cfg.nproc_per_node > 0 && !dist::is_launched_worker()) {
    try {
      if (dist::launched_by_mpi() || dist::launched_by_env())
        throw UsageError("--nproc-per-node starts its own workers: run it once per node, not under mpirun, srun or "
                         "torchrun (or drop --nproc-per-node there)");
      dist::LaunchOptions lo;
      lo.nproc_per_node = int(cfg.nproc_per_node);
      lo.nnodes = int(cfg.nnodes);
      lo.node_rank = int(cfg.node_rank);
      lo.master_addr = cfg.master_addr;
      lo.master_port = int(cfg.master_port);
      lo.rdzv_file = cfg.rdzv_file;
      lo.name = app_name;
      std::vector<std::string> args{dist::this_executable()};
      for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
      return dist::spawn_local_workers(lo, args);
    } catch (const std::exception& e) {  // bad launch options, a port in use: before any worker
      std::fprintf(stderr, "%s: error: %s\n", app_name.c_str(), e.what());
      return 2;
    }
  }
  if (cfg.nproc_per_node == 0 && (cfg.nnodes != 1 || cfg.node_rank != 0 || !cfg.master_addr.empty() ||
                                  cfg.master_port != 0 || !cfg.rdzv_file.empty())) {
    std::fprintf(stderr, "%s: error: --nnodes, --node-rank, --master-addr, --master-port and --rdzv-file go with "
                 "--nproc-per-node N (ember's launcher)\n", app_name.c_str());
    return 2;
  }
  // An error on one rank of a data-parallel job ends the whole job: the other ranks would
  // otherwise wait in their next collective until the timeout.
  auto fail = [&](const char* what, int code) {
    bool many = dist::is_initialized() && dist::default_group().world_size() > 1;
    if (many) {
      std::fprintf(stderr, "%s: error (rank %d): %s\n", app_name.c_str(), dist::default_group().rank(), what);
      dist::abort_job(code);
    }
    std::fprintf(stderr, "%s: error: %s\n", app_name.c_str(), what);
    return code;
  };
  try {
    int rc = train_or_evaluate(cfg, app_name, make_datasets);
    dist::destroy_process_group();
    return rc;
  } catch (const UsageError& e) {
    return fail(e.what(), 2);
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}

}  // namespace ember::app
