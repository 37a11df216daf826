#pragma once
// Shared by the config and command-line targets: apps/common/config.cpp's parse_config with
// the mnist app's spec. Its contract (config.h): a bad file or command line throws
// app::UsageError (the app prints it and exits 2), help returns false; anything else
// escaping (a YAML or CLI11 exception, std::out_of_range, ...) would end the app through
// std::terminate, so it is a finding, and so is a config that parses into values the
// options' checks should have refused.
#include <cmath>
#include <string>
#include <vector>

#include "apps/common/config.h"
#include "nn/models.h"

namespace ember::fuzz {

inline const app::AppSpec& mnist_spec() {
  static const app::AppSpec spec = [] {
    app::AppSpec s;
    s.name = "mnist";
    s.defaults.out = "out/mnist";
    s.models = nn::model_names("1x28x28");
    s.datasets = {"mnist", "fashion-mnist"};
    return s;
  }();
  return spec;
}

inline void parse_args(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  app::TrainConfig cfg;
  try {
    if (!app::parse_config(int(args.size()), argv.data(), mnist_spec(), cfg)) return;  // --help
  } catch (const app::UsageError&) {
    return;  // a clear error: what a bad input must get
  }
  // Accepted: the values must be what the options promise.
  if (cfg.epochs < 0 || cfg.batch_size <= 0 || cfg.test_batch_size <= 0 || cfg.workers < 0 ||
      cfg.log_interval <= 0 || cfg.image_count <= 0 || !std::isfinite(cfg.lr) || cfg.lr < 0 ||
      !std::isfinite(cfg.momentum) || !std::isfinite(cfg.weight_decay) || !std::isfinite(cfg.gamma) ||
      !(cfg.bucket_mb > 0) || !std::isfinite(cfg.bucket_mb))
    __builtin_trap();
  (void)app::parse_milestones(cfg.milestones);
  (void)app::config_to_yaml(cfg);
}

}  // namespace ember::fuzz
