#pragma once
// The classification training loop shared by the mnist and cifar apps: train/test epochs,
// logging, metrics.jsonl, best-model saving, checkpoints and exact resume, evaluation.
#include <functional>
#include <memory>
#include <string>

#include "apps/common/config.h"
#include "data/dataset.h"

namespace ember::app {

struct Datasets {
  std::shared_ptr<const data::Dataset> train, test;
};

/// Runs an app: parses flags over `defaults`, builds the datasets with `make_datasets`,
/// and trains or evaluates. Returns the process exit status: 0 success, 1 runtime error,
/// 2 usage error, 3 stopped by --crash-iteration.
int run_classifier_app(int argc, char** argv, const std::string& app_name, TrainConfig defaults,
                       const std::function<Datasets(const TrainConfig&)>& make_datasets);

/// The dataset folder: `cfg.data` when given, else the first of data/<name>,
/// ../shared/data/<name> that exists; throws naming the places tried.
std::string resolve_data_dir(const TrainConfig& cfg, const std::string& name);

}  // namespace ember::app
