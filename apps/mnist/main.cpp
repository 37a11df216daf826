// mnist: train and evaluate LeNet / MLP / ConvNet on MNIST or Fashion-MNIST.
// Everything but the dataset choice lives in apps/common (config, training loop).
#include "apps/common/trainer.h"
#include "data/mnist.h"
#include "nn/models.h"
#include "core/error.h"

using namespace ember;

int main(int argc, char** argv) {
  app::AppSpec spec;
  spec.name = "mnist";
  spec.defaults.out = "out/mnist";  // reference script 001: lenet, SGD 0.01/0.9/5e-4, cosine, 10 epochs
  spec.models = nn::model_names("1x28x28");
  spec.datasets = {"mnist", "fashion-mnist"};
  return app::run_classifier_app(argc, argv, spec, [](const app::TrainConfig& cfg) {
    if (cfg.dataset != "mnist" && cfg.dataset != "fashion-mnist")
      throw app::UsageError("--dataset " + cfg.dataset + ": expected mnist or fashion-mnist");
    std::string dir = app::resolve_data_dir(cfg, cfg.dataset);
    data::Normalize norm = cfg.dataset == "mnist" ? data::Normalize::mnist() : data::Normalize::fashion_mnist();
    return app::Datasets{std::make_shared<data::MnistDataset>(dir, true, norm),
                         std::make_shared<data::MnistDataset>(dir, false, norm)};
  });
}
