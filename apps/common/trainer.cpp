// The training loop of the classifier apps. Note [Exact resume]: a checkpoint holds the
// model, the optimizer buffers, the scheduler, the loader position (epoch, next batch, seed),
// the RNG state and the running epoch sums, so a run stopped after iteration k and resumed
// performs exactly the computations the uninterrupted run would have (on CPU the weights
// come out bit for bit equal).
//
// Data parallel (`mpirun -np N`): every rank trains on its DistributedSampler shard at
// --batch-size per process (effective batch N x batch) through dist::DDP, evaluates its
// unpadded shard of the test set (sums added over ranks: each sample counts once), and
// rank 0 alone logs, writes metrics and checkpoints. Checkpoints hold the epoch sums added
// over ranks; on resume rank 0 carries them and the others start from zero, so the sums
// at the end of the epoch are the same as without the interruption.
#include "apps/common/trainer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/common/log.h"
#include "data/loader.h"
#include "dist/dist.h"
#include "ember.h"
#include "io/safetensors.h"
#include "nn/models.h"
#include "optim/lr_scheduler.h"
#include "optim/sgd.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace ember::app {

namespace {

constexpr int kCheckpointVersion = 1;

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

struct EvalResult {
  double loss = 0;  // mean cross-entropy
  double acc = 0;   // percent
  int64_t count = 0;
};

/// Evaluates this rank's shard of the test set; the sums are added over ranks.
EvalResult evaluate(nn::Module& model, data::DataLoader& loader, dist::ProcessGroup& pg) {
  NoGradGuard no_grad;
  model.eval();
  loader.set_epoch(0);
  Tensor loss_sum, correct;
  int64_t count = 0;
  while (auto b = loader.next()) {
    Tensor logits = model(b->images);
    Tensor l = cross_entropy(logits, b->labels, Reduction::sum).to(DType::f64);
    Tensor c = sum(eq(argmax(logits, 1), b->labels));
    loss_sum = loss_sum.defined() ? loss_sum + l : l;
    correct = correct.defined() ? correct + c : c;
    count += b->size();
  }
  std::vector<double> sums = dist::allreduce_sum(
      pg, {loss_sum.defined() ? loss_sum.item() : 0.0,
           correct.defined() ? double(correct.item<int64_t>()) : 0.0, double(count)});
  EvalResult r;
  r.count = int64_t(sums[2]);
  if (r.count > 0) {
    r.loss = sums[0] / double(r.count);
    r.acc = 100.0 * sums[1] / double(r.count);
  }
  return r;
}

/// Running sums of one training epoch; kept on the model's device so that training does
/// not wait for the GPU at every iteration, and stored in checkpoints (Note [Exact resume]).
struct EpochSums {
  Tensor loss;     // f64 sum of per-sample losses
  Tensor correct;  // i64
  int64_t seen = 0;
  double loss_value() const { return loss.defined() ? loss.item() : 0.0; }
  int64_t correct_value() const { return correct.defined() ? correct.item<int64_t>() : 0; }
  /// The sums over all ranks (a collective: every rank calls it at the same point).
  EpochSums global(dist::ProcessGroup& pg) const {
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
};

struct RunState {
  int64_t epoch = 0;      // the epoch in progress (0-based)
  int64_t iteration = 0;  // completed training iterations, over all epochs
  double best_acc = -1;
  int64_t best_epoch = 0;
};

void save_checkpoint(const std::string& path, const std::string& model_name, nn::Module& model,
                     optim::Optimizer& opt, optim::LRScheduler& sched, const data::DataLoader& loader,
                     const RunState& st, const EpochSums& sums) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [k, t] : model.state_dict()) tensors.emplace_back("model." + k, t);
  optim::OptimizerState os = opt.state_dict();
  for (const auto& [k, t] : os.tensors) tensors.emplace_back("optim." + k, t);
  data::LoaderState ls = loader.state();
  GeneratorState rng = default_generator().state();
  json meta = {
      {"format_version", kCheckpointVersion},
      {"model", model_name},
      {"epoch", st.epoch},
      {"iteration", st.iteration},
      {"best_acc", st.best_acc},
      {"best_epoch", st.best_epoch},
      {"loader", {{"epoch", ls.epoch}, {"batch", ls.batch}, {"seed", ls.seed}}},
      {"rng", {{"seed", rng.seed}, {"offset", rng.offset}}},
      {"epoch_sums", {{"loss", sums.loss_value()}, {"correct", sums.correct_value()}, {"seen", sums.seen}}},
      {"optimizer", os.scalars},
      {"scheduler", sched.state_dict()},
  };
  save_safetensors(path, tensors, {{"ember", meta.dump()}});
}

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
    EMBER_THROW("--resume ", path, ": corrupt checkpoint metadata: '", key,
                "' must be an integer, got ", v.dump());
  }
  EMBER_CHECK(ok && r >= lo && r <= hi, "--resume ", path, ": corrupt checkpoint metadata: '", key,
              "' is ", v.dump(), ", expected an integer in [", lo, ", ", hi, "]");
  return r;
}

uint64_t meta_uint(const json& j, const char* key, const std::string& path) {
  const json& v = j.at(key);
  EMBER_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), "--resume ",
              path, ": corrupt checkpoint metadata: '", key, "' must be a non-negative integer, got ",
              v.dump());
  return v.get<uint64_t>();
}

void load_checkpoint(const std::string& path, const std::string& model_name, nn::Module& model,
                     optim::Optimizer& opt, optim::LRScheduler& sched, data::DataLoader& loader,
                     RunState& st, EpochSums& sums, Device device) {
  SafetensorsFile f = load_safetensors(path);
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
    sched.load_state_dict(meta.at("scheduler").get<optim::ScalarState>());
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
    EMBER_CHECK(std::isfinite(best_acc), "--resume ", path,
                ": corrupt checkpoint metadata: 'best_acc' is ", best_acc);
    const json& s = meta.at("epoch_sums");
    const int64_t seen = meta_int(s, "seen", path, 0);
    const int64_t correct = meta_int(s, "correct", path, 0);
    const double loss_sum = s.at("loss").get<double>();
    loader.load_state({l_epoch, l_batch, l_seed});
    default_generator().set_state({rng_seed, rng_offset});
    st.epoch = epoch;
    st.iteration = iteration;
    st.best_acc = best_acc;
    st.best_epoch = best_epoch;
    sums.seen = seen;
    if (sums.seen > 0) {
      sums.loss = scalar_tensor(loss_sum, {.dtype = DType::f64, .device = device});
      sums.correct = scalar_tensor(double(correct), {.dtype = DType::i64, .device = device});
    }
  } catch (const json::exception& e) {
    EMBER_THROW("--resume ", path, ": corrupt checkpoint metadata: ", e.what());
  }
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream f(path, std::ios::app);
  EMBER_CHECK(f.good(), "cannot write ", path);
  f << line << "\n";
}

optim::SchedulerConfig scheduler_config(const TrainConfig& cfg) {
  optim::SchedulerConfig s;
  s.kind = cfg.scheduler;
  s.total_steps = cfg.epochs;  // stepped once per epoch, as the reference scripts
  s.warmup_steps = cfg.warmup_epochs;
  s.step_size = std::max<int64_t>(1, cfg.epochs / 3);
  return s;
}

int train_or_evaluate(const TrainConfig& cfg, const std::string& app_name,
                      const std::function<Datasets(const TrainConfig&)>& make_datasets) {
  bool evaluating = !cfg.evaluate.empty();
  dist::ProcessGroup& pg = dist::init_process_group();
  const bool main_rank = pg.is_main();
  const int world = pg.world_size();
  Device device = resolve_device(cfg.device, pg);
  if (!evaluating && main_rank) fs::create_directories(cfg.out);
  auto log = make_logger(evaluating || !main_rank ? "" : (fs::path(cfg.out) / "train.log").string(), !main_rank);
  if (!evaluating && main_rank) {
    std::ofstream(fs::path(cfg.out) / "args.yaml") << config_to_yaml(cfg);
    log->info("{} {} on {} | out {}", app_name, cfg.model, device.str(), cfg.out);
  }
  if (world > 1)
    log->info("data parallel: {} processes, batch {} per process, effective batch {}; gradients in {} MB buckets{}",
              world, cfg.batch_size, cfg.batch_size * world, cfg.bucket_mb,
              cfg.grad_compression == "fp16" ? ", sent as fp16" : "");
  else if (cfg.grad_compression != "none")
    log->info("--grad-compression {} has no effect in a single process", cfg.grad_compression);
  manual_seed(cfg.seed);

  Datasets ds = make_datasets(cfg);
  if (cfg.limit_train > 0) ds.train = data::Subset::head(ds.train, cfg.limit_train);
  if (cfg.limit_test > 0) ds.test = data::Subset::head(ds.test, cfg.limit_test);

  nn::ModulePtr model = nn::make_model(cfg.model);
  model->to(device);

  data::DataLoader test_loader(ds.test, {.batch_size = cfg.test_batch_size, .num_workers = int(cfg.workers),
                                         .device = device},
                               std::make_shared<dist::ShardSampler>(ds.test->size(), pg.rank(), world));
  if (evaluating) {
    SafetensorsFile f = load_safetensors(cfg.evaluate);
    model->load_state_dict(nn::StateDict(f.tensors));
    EvalResult r = evaluate(*model, test_loader, pg);
    if (main_rank)
      std::printf("%s\n", json{{"test_loss", r.loss}, {"test_acc", r.acc}, {"test_samples", r.count}}.dump().c_str());
    return 0;
  }

  // Rank r's shard of each epoch's permutation (in a world of one: all of it, in the order
  // RandomSampler(seed) would give).
  data::DataLoader train_loader(ds.train, {.batch_size = cfg.batch_size, .seed = cfg.seed,
                                           .num_workers = int(cfg.workers), .device = device},
                                std::make_shared<data::DistributedSampler>(ds.train->size(), pg.rank(), world,
                                                                           /*shuffle=*/true, cfg.seed));
  optim::SGD opt(model->parameters(), {.lr = cfg.lr, .momentum = cfg.momentum,
                                       .weight_decay = cfg.weight_decay, .nesterov = cfg.nesterov});
  std::shared_ptr<optim::LRScheduler> sched = optim::make_scheduler(opt, scheduler_config(cfg));
  log->info("{} parameters; {} training / {} test samples; batch {}, {} iterations per epoch",
            model->num_parameters(), ds.train->size(), ds.test->size(), cfg.batch_size,
            train_loader.num_batches());

  RunState st;
  EpochSums sums;
  bool mid_epoch = false;
  if (!cfg.resume.empty()) {
    // Every rank reads the checkpoint (on a shared file system, or copied to each node).
    load_checkpoint(cfg.resume, cfg.model, *model, opt, *sched, train_loader, st, sums, device);
    if (!main_rank) sums = EpochSums();  // rank 0 carries the global sums
    mid_epoch = train_loader.state().batch > 0;
    log->info("resumed from {}: epoch {}, iteration {}{}", cfg.resume, st.epoch + 1, st.iteration,
              mid_epoch ? " (mid-epoch)" : "");
  }

  const std::string metrics_path = (fs::path(cfg.out) / "metrics.jsonl").string();
  const std::string last_path = (fs::path(cfg.out) / "last.ckpt").string();
  const std::string best_path = (fs::path(cfg.out) / "best.safetensors").string();
  // Note [Non-finite loss]: the last checkpoint written (or resumed from) is the one named
  // when a NaN or inf loss stops the run; no checkpoint is written after such a loss.
  std::string last_good = cfg.resume;
  auto checkpoint = [&] {
    EpochSums global = sums.global(pg);
    if (main_rank) save_checkpoint(last_path, cfg.model, *model, opt, *sched, train_loader, st, global);
    last_good = last_path;
  };
  int64_t skipped = 0;
  // Data parallel: DDP broadcasts rank 0's weights now and averages gradients in backward.
  std::unique_ptr<dist::DDP> ddp;
  if (world > 1)
    ddp = std::make_unique<dist::DDP>(model, dist::DDPOptions{
                                                 .bucket_mb = cfg.bucket_mb,
                                                 .compression = dist::parse_grad_compression(cfg.grad_compression)});

  for (; st.epoch < cfg.epochs; ++st.epoch) {
    auto t0 = std::chrono::steady_clock::now();
    if (!mid_epoch) {
      train_loader.set_epoch(st.epoch);
      sums = EpochSums();
    }
    mid_epoch = false;
    model->train();
    double lr = opt.lr();
    Progress progress(log, st.epoch + 1, cfg.epochs, train_loader.num_batches(), cfg.log_interval, main_rank);
    while (auto b = train_loader.next()) {
      Tensor logits = ddp ? (*ddp)(b->images) : (*model)(b->images);
      Tensor loss = cross_entropy(logits, b->labels);
      if (st.iteration + 1 == cfg.nan_iteration) loss = loss * std::nan("");
      // Note [Non-finite loss]: checked before backward and the step, one scalar read per
      // iteration (as GradScaler's check); every rank takes the same decision.
      double loss_value = loss.item();
      bool finite = std::isfinite(loss_value);
      if (world > 1) finite = dist::allreduce_sum(pg, {finite ? 0.0 : 1.0})[0] == 0.0;
      if (!finite && !cfg.skip_nonfinite) {
        EMBER_THROW("iteration ", st.iteration + 1, " (epoch ", st.epoch + 1, "): the training loss is ",
                    loss_value, " (not finite); stopped before its optimizer step. ",
                    last_good.empty() ? std::string("No checkpoint was written yet")
                                      : "The last good checkpoint is " + last_good,
                    " (resume with --resume, e.g. with a lower --lr); --skip-nonfinite skips such steps");
      }
      if (finite) {
        if (ddp) ddp->zero_grad();  // keeps the gradients as views of the buckets
        else model->zero_grad();
        loss.backward();
        if (ddp) ddp->finish();
        opt.step();
      } else {
        ++skipped;
        log->warn("iteration {} (epoch {}): the training loss is {}; its step was skipped (--skip-nonfinite)",
                  st.iteration + 1, st.epoch + 1, loss_value);
      }
      ++st.iteration;
      if (finite) {
        NoGradGuard no_grad;
        Tensor l = loss.detach().to(DType::f64) * double(b->size());
        Tensor c = sum(eq(argmax(logits.detach(), 1), b->labels));
        sums.loss = sums.loss.defined() ? sums.loss + l : l;
        sums.correct = sums.correct.defined() ? sums.correct + c : c;
        sums.seen += b->size();
      }
      int64_t it_in_epoch = train_loader.state().batch;
      if (it_in_epoch == 0) it_in_epoch = train_loader.num_batches();
      progress.tick(it_in_epoch, int64_t(b->size()) * world);  // images over all ranks
      if (it_in_epoch % cfg.log_interval == 0 || it_in_epoch == train_loader.num_batches()) {
        // This rank's running loss and accuracy.
        if (sums.seen > 0)
          progress.update(it_in_epoch, sums.loss_value() / double(sums.seen),
                          double(sums.correct_value()) / double(sums.seen));
      }
      if (cfg.save_every > 0 && st.iteration % cfg.save_every == 0) checkpoint();
      if (st.iteration == cfg.crash_iteration) {
        progress.finish();
        log->warn("stopping after iteration {} as asked by --crash-iteration", st.iteration);
        return 3;
      }
    }
    progress.finish();
    double train_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EvalResult test = evaluate(*model, test_loader, pg);
    sums = sums.global(pg);
    sched->step();
    double epoch_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double train_loss = sums.seen ? sums.loss_value() / double(sums.seen) : 0.0;
    double train_acc = sums.seen ? 100.0 * double(sums.correct_value()) / double(sums.seen) : 0.0;
    log->info("epoch {}/{}: train loss {:.4f} acc {:.2f}% | test loss {:.4f} acc {:.2f}% | lr {:.5g} | {:.1f}s, {:.0f} img/s",
              st.epoch + 1, cfg.epochs, train_loss, train_acc, test.loss, test.acc, lr, epoch_secs,
              double(sums.seen) / train_secs);
    if (main_rank)
      append_line(metrics_path, json{{"epoch", st.epoch + 1}, {"train_loss", train_loss}, {"train_acc", train_acc},
                                     {"test_loss", test.loss}, {"test_acc", test.acc}, {"lr", lr},
                                     {"epoch_seconds", epoch_secs},
                                     {"train_images_per_second", double(sums.seen) / train_secs},
                                     {"train_samples", sums.seen}, {"test_samples", test.count},
                                     {"world_size", world}}
                                    .dump());
    if (test.acc > st.best_acc) {
      st.best_acc = test.acc;
      st.best_epoch = st.epoch + 1;
      if (main_rank) {
        save_safetensors(best_path, model->state_dict().items(),
                         {{"epoch", std::to_string(st.epoch + 1)}, {"test_acc", std::to_string(test.acc)}});
        log->info("saved the best model so far ({:.2f}%) to {}", test.acc, best_path);
      }
    }
    sums = EpochSums();
    RunState next = st;
    ++next.epoch;
    if (main_rank) save_checkpoint(last_path, cfg.model, *model, opt, *sched, train_loader, next, sums);
    last_good = last_path;
  }
  if (skipped > 0) log->warn("{} step(s) skipped for a non-finite loss (--skip-nonfinite)", skipped);
  log->info("best test accuracy {:.2f}% (epoch {})", st.best_acc, st.best_epoch);
  return 0;
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

int run_classifier_app(int argc, char** argv, const std::string& app_name, TrainConfig defaults,
                       const std::function<Datasets(const TrainConfig&)>& make_datasets) {
  TrainConfig cfg = defaults;
  try {
    if (!parse_config(argc, argv, app_name, cfg)) return 0;
    const auto names = nn::model_names();
    if (std::find(names.begin(), names.end(), cfg.model) == names.end()) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      throw UsageError("--model " + cfg.model + ": unknown model (expected one of " + list + ")");
    }
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s\n(run `%s --help` for the options)\n", app_name.c_str(), e.what(),
                 app_name.c_str());
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
