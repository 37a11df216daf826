// Config parsing with CLI11 (flags) and yaml-cpp (--config FILE): the file sets values,
// flags given on the command line override them.
#include "apps/common/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

namespace ember::app {

namespace {

std::string dashed(std::string k) {
  std::replace(k.begin(), k.end(), '_', '-');
  return k;
}

// Checks a decimal integer and drops its leading zeros (CLI11 would read "010" as octal 8).
std::string check_decimal(std::string& v, bool allow_sign) {
  size_t i = 0;
  if (allow_sign && (v.rfind('-', 0) == 0 || v.rfind('+', 0) == 0)) i = 1;
  if (i >= v.size() || v.find_first_not_of("0123456789", i) != std::string::npos)
    return "'" + v + "' is not a decimal integer";
  const size_t first = std::min(v.find_first_not_of('0', i), v.size() - 1);
  v.erase(i, first - i);
  errno = 0;
  char* end = nullptr;
  if (allow_sign) std::strtoll(v.c_str(), &end, 10);
  else std::strtoull(v.c_str(), &end, 10);
  if (errno == ERANGE) return "'" + v + "' is out of range (at most " +
                              (allow_sign ? std::to_string(INT64_MAX) : std::to_string(UINT64_MAX)) + ")";
  return "";
}

const CLI::Validator kDecimalInt(
    [](std::string& v) { return check_decimal(v, /*allow_sign=*/true); }, "", "decimal int64");
const CLI::Validator kDecimalUint(
    [](std::string& v) { return check_decimal(v, /*allow_sign=*/false); }, "", "decimal uint64");
const CLI::Validator kFiniteNumber(
    [](std::string& v) -> std::string {
      errno = 0;
      char* end = nullptr;
      double d = std::strtod(v.c_str(), &end);
      if (v.empty() || end != v.c_str() + v.size()) return "'" + v + "' is not a number";
      if (!std::isfinite(d) || errno == ERANGE)
        return "'" + v + "' is not a finite number in range";
      return "";
    },
    "", "finite number");

void add_options(CLI::App& app, TrainConfig& c, std::string& config_file, const AppSpec& spec) {
  app.add_option("--config", config_file,
                 "YAML file with any of these options (starts from the defaults; flags override it; "
                 "OUT/args.yaml is one)");
  app.add_option("--model", c.model, join(spec.models, " | "))->capture_default_str();
  app.add_option("--dataset", c.dataset, join(spec.datasets, " | "))->capture_default_str();
  app.add_option("--data", c.data, "dataset folder (default: data/<dataset>, then ../shared/data/<dataset>)");
  app.add_option("--epochs", c.epochs)->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--batch-size", c.batch_size, "batch size per process")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--test-batch-size", c.test_batch_size)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--lr", c.lr)->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--momentum", c.momentum)->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--weight-decay", c.weight_decay)->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--nesterov", c.nesterov, "Nesterov momentum");
  app.add_option("--scheduler", c.scheduler,
                 "cosine | step | multistep | linear (warm-up to lr, then linear to 0) | none")
      ->capture_default_str()->check(CLI::IsMember({"cosine", "step", "multistep", "linear", "none"}));
  app.add_option("--warmup-epochs", c.warmup_epochs, "linear LR warm-up epochs (any scheduler)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--milestones", c.milestones, "multistep: epochs where lr *= gamma, e.g. 10,20 (after the warm-up)");
  app.add_option("--gamma", c.gamma, "step, multistep: decay factor")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--step-size", c.step_size, "step: epochs between decays (0: max(1, epochs/3))")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--sched-unit", c.sched_unit,
                 "epoch: the lr changes once per epoch; iteration: every iteration (lengths still in epochs)")
      ->capture_default_str()->check(CLI::IsMember({"epoch", "iteration"}));
  app.add_option("--device", c.device, "auto | cpu | cuda | cuda:N")->capture_default_str();
  app.add_option("--seed", c.seed)->capture_default_str();
  app.add_flag("--deterministic", c.deterministic,
               "bitwise-repeatable runs: deterministic cuDNN algorithms chosen without timing, no atomics in "
               "scatter-add, CPU sums independent of the thread count");
  app.add_option("--amp", c.amp,
                 "mixed precision: none | fp16 (autocast, f32 master weights, loss scaling) | bf16 (autocast)")
      ->capture_default_str()->check(CLI::IsMember({"none", "fp16", "bf16"}));
  app.add_option("--loss-scale", c.loss_scale, "--amp fp16: the initial loss scale (halved after a step with "
                 "inf/NaN gradients, doubled after --loss-scale-growth-interval clean steps)")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--loss-scale-growth-interval", c.loss_scale_growth_interval, "--amp fp16: clean steps before the scale doubles")
      ->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--clip-grad-norm", c.clip_grad_norm, "clip the gradients' total 2-norm to this before each step (0: off)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_flag("--sync-bn", c.sync_bn, "data parallel: BatchNorm statistics over the whole batch of all processes");
  app.add_option("--workers", c.workers, "data loader prefetch threads")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--no-data-on-device", c.no_data_on_device,
               "CUDA: make batches on the CPU (--workers threads, pinned copies) instead of keeping the dataset on "
               "the GPU and gathering, augmenting and normalizing each batch there (same images either way)");
  // torchrun's names, with its underscores too, so that the reference commands carry over.
  app.add_option("--nproc-per-node,--nproc_per_node", c.nproc_per_node,
                 "data parallel without MPI: start N worker processes on this node (one per GPU, or N CPU "
                 "workers sharing the cores) and wait for them")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--nnodes", c.nnodes, "with --nproc-per-node: the number of nodes")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--node-rank,--node_rank", c.node_rank, "with --nproc-per-node: this node's index (0 to nnodes-1)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--master-addr,--master_addr", c.master_addr,
                 "with --nproc-per-node: node 0's address, where the rendezvous is served (default 127.0.0.1)");
  app.add_option("--master-port,--master_port", c.master_port,
                 "with --nproc-per-node: the rendezvous port (default: a free one; several nodes must name it)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--rdzv-file", c.rdzv_file,
                 "with --nproc-per-node: rendezvous through this file on a file system every node shares");
  app.add_option("--out", c.out, "output folder: train.log, metrics.jsonl, best.safetensors, last.ckpt")
      ->capture_default_str();
  app.add_option("--log-interval", c.log_interval, "iterations between log lines")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--resume", c.resume, "continue training from this checkpoint");
  app.add_option("--evaluate", c.evaluate, "test these weights (.safetensors, or a training checkpoint) and exit");
  app.add_option("--save-every", c.save_every, "also checkpoint every N iterations")->check(CLI::NonNegativeNumber);
  app.add_option("--keep-checkpoints", c.keep_checkpoints,
                 "also keep the last K checkpoints as OUT/checkpoint_<iteration>.ckpt (0: only last.ckpt)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tensorboard", c.tensorboard, "TensorBoard event folder (default: OUT/tb)");
  app.add_flag("--no-tensorboard", c.no_tensorboard, "write no TensorBoard events");
  app.add_option("--image-every", c.image_every,
                 "every N epochs a PNG grid of test predictions, OUT/images/ and TensorBoard (0: never)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  app.add_option("--image-count", c.image_count, "images in that grid")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--crash-iteration", c.crash_iteration, "exit with status 3 right after iteration N (to test resume)");
  app.add_flag("--skip-nonfinite", c.skip_nonfinite,
               "skip an optimizer step whose loss is NaN or inf (default: stop, naming the iteration and the last good checkpoint)");
  app.add_option("--nan-iteration", c.nan_iteration, "make the loss NaN at iteration N (to test --skip-nonfinite)");
  app.add_option("--limit-train", c.limit_train, "use only the first N training samples")->check(CLI::NonNegativeNumber);
  app.add_option("--limit-test", c.limit_test, "use only the first N test samples")->check(CLI::NonNegativeNumber);
  app.add_option("--grad-compression", c.grad_compression, "none | fp16 (data-parallel allreduce)")
      ->capture_default_str()->check(CLI::IsMember({"none", "fp16"}));
  app.add_option("--bucket-mb", c.bucket_mb, "data-parallel gradient bucket size in MB")->capture_default_str()
      ->check(CLI::PositiveNumber);
  // An option given twice (in the file, then as a flag) keeps the last value.
  for (CLI::Option* o : app.get_options()) {
    o->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    // CLI11 (2.1) converts with strtoll/strtoull and base 0: it saturates out-of-range
    // numbers (epochs 99999999999999999999999 became INT64_MAX), wraps "-1" to 2^64 - 1 for
    // unsigned options and reads "010" as octal; NaN passes its NonNegativeNumber check.
    // Numbers are vetted as strings first: decimal integers in range, finite floats.
    // transform(): these run before the range checks added with the options.
    const std::string full = o->get_type_name();  // "INT:POSITIVE": the type, then the checks
    const std::string type = full.substr(0, full.find(':'));
    if (type == "INT") o->transform(kDecimalInt);
    else if (type == "UINT") o->transform(kDecimalUint);
    else if (type == "FLOAT") o->transform(kFiniteNumber);
  }
}

/// Applies a YAML mapping onto the options (as if given as flags before the real ones).
std::vector<std::string> yaml_to_args(const std::string& path, const CLI::App& app) {
  // A folder makes yaml-cpp's read throw std::ios_base::failure past its own exceptions
  // (found by fuzz/cli_fuzz: `--config /` ended the app in std::terminate), and a FIFO would
  // block the open: only a regular file (or a link to one) is read.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) throw UsageError("--config " + path + ": cannot open the file");
  if (!std::filesystem::is_regular_file(st))
    throw UsageError("--config " + path + ": not a regular file (" +
                     (std::filesystem::is_directory(st) ? "a directory" : "a device, FIFO or socket") + ")");
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw UsageError("--config " + path + ": cannot open the file");
  } catch (const YAML::Exception& e) {
    throw UsageError("--config " + path + ": invalid YAML: " + e.what());
  } catch (const std::exception& e) {  // a read error yaml-cpp does not wrap
    throw UsageError("--config " + path + ": cannot read the file: " + e.what());
  }
  if (!root.IsMap()) throw UsageError("--config " + path + ": expected a mapping of option: value");
  std::vector<std::string> args;
  for (const auto& kv : root) {
    // as<std::string>() on a sequence or mapping throws YAML::BadConversion, which would end
    // the app in std::terminate: keys and values are checked to be scalars first.
    if (!kv.first.IsScalar()) throw UsageError("--config " + path + ": expected option names as keys, got a " +
                                               (kv.first.IsSequence() ? "list" : kv.first.IsMap() ? "mapping" : "null"));
    std::string key = dashed(kv.first.as<std::string>());
    if (key == "config") throw UsageError("--config " + path + ": a config file cannot name another");
    const CLI::Option* opt = app.get_option_no_throw("--" + key);
    if (!opt) throw UsageError("--config " + path + ": unknown option '" + kv.first.as<std::string>() + "'");
    std::string v;
    if (kv.second.IsSequence() && key == "milestones") {
      for (const auto& item : kv.second) {
        if (!item.IsScalar()) throw UsageError("--config " + path + ": milestones: expected a list of epochs");
        v += (v.empty() ? "" : ",") + item.as<std::string>();
      }
    } else if (kv.second.IsNull()) {
      v = "";
    } else if (!kv.second.IsScalar()) {
      throw UsageError("--config " + path + ": option '" + key + "' needs a single value");
    } else {
      v = kv.second.as<std::string>();
    }
    if (opt->get_expected_min() == 0) {  // a flag
      if (v == "true" || v == "True" || v == "1" || v == "yes") args.push_back("--" + key);
      else if (!(v == "false" || v == "False" || v == "0" || v == "no"))
        throw UsageError("--config " + path + ": option '" + key + "' is a flag: true or false, got '" + v + "'");
      continue;
    }
    args.push_back("--" + key);
    args.push_back(v);
  }
  return args;
}

}  // namespace

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

std::vector<int64_t> parse_milestones(const std::string& text) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string item = text.substr(pos, end - pos);
    item.erase(0, item.find_first_not_of(" "));
    item.erase(item.find_last_not_of(" ") + 1);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0)
      throw UsageError("--milestones " + text + ": expected non-negative epochs separated by commas, e.g. 10,20");
    out.push_back(v);
    pos = end + 1;
  }
  return out;
}

bool parse_config(int argc, char** argv, const AppSpec& spec, TrainConfig& cfg) {
  const std::string& app_name = spec.name;
  cfg = spec.defaults;
  std::string config_file;
  CLI::App app("ember " + app_name + ": train and evaluate classifiers", app_name);
  add_options(app, cfg, config_file, spec);
  app.footer("models: " + join(spec.models) + "\ndatasets: " + join(spec.datasets) + "\n");
  std::vector<std::string> args;
  for (int i = argc - 1; i >= 1; --i) args.push_back(argv[i]);  // CLI11 wants them reversed
  try {
    app.parse(args);  // first pass: finds --config (and validates the flags)
    if (!config_file.empty()) {
      std::vector<std::string> file_args = yaml_to_args(config_file, app);
      cfg = spec.defaults;  // the app's own defaults, then the file, then the flags
      std::string cf2;
      CLI::App app2("ember " + app_name, app_name);
      add_options(app2, cfg, cf2, spec);
      std::vector<std::string> all;  // flags after the file's values: the flags win
      for (const auto& a : file_args) all.push_back(a);
      for (int i = 1; i < argc; ++i) all.push_back(argv[i]);
      std::reverse(all.begin(), all.end());
      app2.parse(all);
    }
  } catch (const CLI::CallForHelp&) {
    std::printf("%s", app.help().c_str());
    return false;
  } catch (const CLI::ParseError& e) {
    throw UsageError(e.what());
  }
  if (std::find(spec.models.begin(), spec.models.end(), cfg.model) == spec.models.end())
    throw UsageError("--model " + cfg.model + ": unknown model for " + app_name + " (its models: " +
                     join(spec.models) + ")");
  if (std::find(spec.datasets.begin(), spec.datasets.end(), cfg.dataset) == spec.datasets.end())
    throw UsageError("--dataset " + cfg.dataset + ": expected " + join(spec.datasets, " or "));
  parse_milestones(cfg.milestones);  // checks it
  if (cfg.scheduler == "multistep" && cfg.milestones.empty())
    throw UsageError("--scheduler multistep needs --milestones (epochs, e.g. 10,20)");
  // Said in the flags' terms here: the scheduler itself can only speak of steps.
  if ((cfg.scheduler == "cosine" || cfg.scheduler == "linear") && cfg.evaluate.empty() &&
      cfg.epochs <= cfg.warmup_epochs)
    throw UsageError("--scheduler " + cfg.scheduler + " anneals over the epochs after the warm-up, so it needs --epochs (" +
                     std::to_string(cfg.epochs) + ") greater than --warmup-epochs (" +
                     std::to_string(cfg.warmup_epochs) + "); for a constant rate use --scheduler none");
  return true;
}

std::string config_to_yaml(const TrainConfig& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  auto kv = [&](const char* k, const auto& v) { out << YAML::Key << k << YAML::Value << v; };
  kv("model", c.model);
  kv("dataset", c.dataset);
  kv("data", c.data);
  kv("epochs", c.epochs);
  kv("batch-size", c.batch_size);
  kv("test-batch-size", c.test_batch_size);
  kv("lr", c.lr);
  kv("momentum", c.momentum);
  kv("weight-decay", c.weight_decay);
  kv("nesterov", c.nesterov);
  kv("scheduler", c.scheduler);
  kv("warmup-epochs", c.warmup_epochs);
  kv("milestones", c.milestones);
  kv("gamma", c.gamma);
  kv("step-size", c.step_size);
  kv("sched-unit", c.sched_unit);
  kv("device", c.device);
  kv("seed", c.seed);
  kv("deterministic", c.deterministic);
  kv("amp", c.amp);
  kv("clip-grad-norm", c.clip_grad_norm);
  kv("loss-scale", c.loss_scale);
  kv("loss-scale-growth-interval", c.loss_scale_growth_interval);
  kv("sync-bn", c.sync_bn);
  kv("workers", c.workers);
  kv("no-data-on-device", c.no_data_on_device);
  kv("out", c.out);
  kv("log-interval", c.log_interval);
  kv("resume", c.resume);
  kv("evaluate", c.evaluate);
  kv("save-every", c.save_every);
  kv("keep-checkpoints", c.keep_checkpoints);
  kv("tensorboard", c.tensorboard);
  kv("no-tensorboard", c.no_tensorboard);
  kv("image-every", c.image_every);
  kv("image-count", c.image_count);
  kv("crash-iteration", c.crash_iteration);
  kv("skip-nonfinite", c.skip_nonfinite);
  kv("nan-iteration", c.nan_iteration);
  kv("limit-train", c.limit_train);
  kv("limit-test", c.limit_test);
  kv("grad-compression", c.grad_compression);
  kv("bucket-mb", c.bucket_mb);
  kv("nproc-per-node", c.nproc_per_node);
  kv("nnodes", c.nnodes);
  kv("node-rank", c.node_rank);
  kv("master-addr", c.master_addr);
  kv("master-port", c.master_port);
  kv("rdzv-file", c.rdzv_file);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace ember::app
