// libFuzzer target: the apps' YAML config reader (apps/common/config.cpp, `--config FILE`:
// yaml-cpp, then each key as the flag of that name), through parse_config as the apps call it.
// EMBER_FUZZ_WRITE_SEEDS=DIR writes seed files there and exits: OUT/args.yaml as the apps
// write it (config_to_yaml of the defaults, and of a multistep run) and hand-written ones
// (a milestones list, flags as yes/no, a null value).
#include <cstdlib>
#include <fstream>

#include "config_common.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("EMBER_FUZZ_WRITE_SEEDS");
  if (!dir) return 0;
  const std::string d = dir;
  ember::app::TrainConfig c = ember::fuzz::mnist_spec().defaults;
  std::ofstream(d + "/args_defaults.yaml") << ember::app::config_to_yaml(c);
  c.scheduler = "multistep";
  c.milestones = "2,4";
  c.sync_bn = true;
  c.device = "cuda:1";
  std::ofstream(d + "/args_multistep.yaml") << ember::app::config_to_yaml(c);
  std::ofstream(d + "/hand.yaml") << "model: lenet\nepochs: 3\nlr: 0.05\nmilestones: [1, 2]\n"
                                     "scheduler: multistep\nnesterov: yes\nno_tensorboard: true\n"
                                     "data: ~\nbatch-size: 0x10\n";
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ember::fuzz::scratch_root() + "/input.yaml";
  ember::fuzz::write_input(path, data, size);
  ember::fuzz::parse_args({"mnist", "--config", path});
  // The file's values, then a flag that overrides one of them.
  ember::fuzz::parse_args({"mnist", "--config", path, "--epochs", "3"});
  return 0;
}
