#pragma once
// What the mnist and cifar apps share beyond their datasets: flags (config.h), the device,
// the data folder, and building the train::Trainer (train/trainer.h) with their hooks.
#include <functional>
#include <memory>
#include <string>

#include "apps/common/config.h"
#include "data/dataset.h"

namespace ember::app {

struct Datasets {
  std::shared_ptr<const data::Dataset> train, test;
};

/// Runs an app: parses flags over `spec.defaults`, builds the datasets with `make_datasets`,
/// and trains or evaluates. Returns the process exit status: 0 success, 1 runtime error,
/// 2 usage error, 3 stopped by --crash-iteration.
int run_classifier_app(int argc, char** argv, const AppSpec& spec,
                       const std::function<Datasets(const TrainConfig&)>& make_datasets);

/// The dataset folder: `cfg.data` when given, else the first of data/<name>,
/// ../shared/data/<name> that exists; throws naming the places tried.
std::string resolve_data_dir(const TrainConfig& cfg, const std::string& name);

}  // namespace ember::app
