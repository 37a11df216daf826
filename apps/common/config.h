#pragma once
// The training apps' configuration: defaults, then a YAML file (--config), then flags.
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ember::app {

/// A bad command line or config file: the app prints it and exits with status 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TrainConfig {
  std::string model = "lenet";
  std::string dataset = "mnist";
  std::string data;  // default: data/<dataset>, then ../shared/data/<dataset>
  int64_t epochs = 10;
  int64_t batch_size = 64;       // per process
  int64_t test_batch_size = 1000;
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 5e-4;
  bool nesterov = false;
  std::string scheduler = "cosine";  // cosine | step | multistep | linear | none
  int64_t warmup_epochs = 0;
  std::string milestones;            // multistep: epochs, comma-separated ("10,20")
  double gamma = 0.1;                // step, multistep
  int64_t step_size = 0;             // step: epochs per decay (0: max(1, epochs / 3))
  std::string sched_unit = "epoch";  // epoch | iteration: when the schedule advances
  std::string device = "auto";  // auto | cpu | cuda | cuda:N
  uint64_t seed = 1;
  bool deterministic = false;
  std::string amp = "none";      // none | fp16 (autocast + loss scaling) | bf16 (autocast)
  double clip_grad_norm = 0;     // clip the gradients' total 2-norm to this (0: off)
  double loss_scale = 65536;     // --amp fp16: the initial loss scale (GradScaler's init_scale)
  int64_t loss_scale_growth_interval = 2000;  // clean steps before the scale doubles
  bool sync_bn = false;          // BatchNorm statistics over every process (data parallel)
  int64_t workers = 2;
  bool no_data_on_device = false;  // CUDA: batches made on the CPU, not from a resident copy on the GPU
  std::string out = "out/mnist";
  int64_t log_interval = 100;
  std::string resume;    // checkpoint to continue from
  std::string evaluate;  // weights to test, then exit
  int64_t save_every = 0;       // also checkpoint every N iterations (0: per epoch only)
  int64_t keep_checkpoints = 0; // also keep the last K checkpoints as checkpoint_<iteration>.ckpt
  std::string tensorboard;      // event file folder (default: <out>/tb)
  bool no_tensorboard = false;
  int64_t image_every = 1;      // a grid of test predictions every N epochs (0: never)
  int64_t image_count = 64;     // images in that grid
  int64_t crash_iteration = -1; // exit non-zero right after this global iteration (tests)
  bool skip_nonfinite = false;  // skip a step whose loss is NaN or inf (default: stop the run)
  int64_t nan_iteration = -1;   // make the loss NaN at this global iteration (tests)
  int64_t limit_train = 0;      // use only the first N training samples (0: all)
  int64_t limit_test = 0;
  std::string grad_compression = "none";  // none | fp16 (data-parallel)
  double bucket_mb = 25.0;                // data-parallel bucket cap
  // ember's launcher (dist/launch.h): start N workers on this node and wait for them.
  int64_t nproc_per_node = 0;  // 0: no launcher (one process, or mpirun/srun/env started it)
  int64_t nnodes = 1;
  int64_t node_rank = 0;
  std::string master_addr;     // node 0's address (default 127.0.0.1)
  int64_t master_port = 0;     // the rendezvous port (0: a free one; one node only)
  std::string rdzv_file;       // a file store on a shared file system instead
};

/// What one app offers: its name, its defaults, the models that fit its data and its datasets.
struct AppSpec {
  std::string name;
  TrainConfig defaults;
  std::vector<std::string> models;
  std::vector<std::string> datasets;
};

/// Parses argv over `spec.defaults` (a --config file starts from them too, then the flags
/// override it). Throws UsageError on bad input (an unknown key names the key and the file;
/// a model or dataset the app does not offer lists those it does); returns false when help
/// was printed (exit 0).
bool parse_config(int argc, char** argv, const AppSpec& spec, TrainConfig& cfg);

/// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& sep = ", ");

/// --milestones "10,20" as numbers; throws UsageError on anything else.
std::vector<int64_t> parse_milestones(const std::string& text);

/// The resolved configuration as YAML (written to OUT/args.yaml).
std::string config_to_yaml(const TrainConfig& cfg);

}  // namespace ember::app
