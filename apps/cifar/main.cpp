// cifar: train and evaluate ResNets on CIFAR-10, from the binary release or from image
// folders (DIR/train/<class>/*.jpg, DIR/test/<class>/*.jpg). Everything but the datasets and
// the defaults lives in apps/common (config, training loop).
#include <filesystem>

#include "apps/common/trainer.h"
#include "data/augment.h"
#include "data/cifar10.h"
#include "data/image_folder.h"
#include "nn/models.h"
#include "core/error.h"

namespace fs = std::filesystem;
using namespace ember;

namespace {

/// The data folder: --data, else data/cifar10 or ../shared/data/cifar10. The shared data
/// holds only the JPEG tarball; say how to unpack it rather than a bare "not found".
std::string cifar_dir(const app::TrainConfig& cfg) {
  if (cfg.data.empty() && !fs::is_directory("data/cifar10") && !fs::is_directory("../shared/data/cifar10")) {
    for (const char* tarball : {"../shared/data/cifar10-jpg.tar.gz", "../../shared/data/cifar10-jpg.tar.gz"}) {
      if (fs::exists(tarball))
        EMBER_THROW("no cifar10 data in data/cifar10; ", tarball,
                    " holds CIFAR-10 as JPEG folders: unpack it with `scripts/get_data.sh cifar10` (or `mkdir -p "
                    "data/cifar10 && tar -xzf ",
                    tarball, " -C data/cifar10 --strip-components=1`), or pass --data DIR");
    }
  }
  return app::resolve_data_dir(cfg, "cifar10");
}

/// The samples of `ds` reordered round-robin over the classes (the k-th image of each class,
/// then the (k+1)-th, ...): image folders list one class after another, and this keeps
/// --limit-train / --limit-test (which take the first N samples) class-balanced.
std::shared_ptr<const data::Dataset> interleave_classes(std::shared_ptr<const data::ImageFolderDataset> ds) {
  std::vector<std::vector<int64_t>> by_class(ds->classes().size());
  std::vector<int64_t> labels = ds->labels().to_vector<int64_t>();
  for (int64_t i = 0; i < int64_t(labels.size()); ++i) by_class[size_t(labels[size_t(i)])].push_back(i);
  std::vector<int64_t> order;
  for (size_t k = 0; order.size() < labels.size(); ++k)
    for (const auto& c : by_class)
      if (k < c.size()) order.push_back(c[k]);
  return std::make_shared<data::Subset>(std::move(ds), std::move(order));
}

app::Datasets cifar_datasets(const app::TrainConfig& cfg) {
  if (cfg.dataset != "cifar10") throw app::UsageError("--dataset " + cfg.dataset + ": expected cifar10");
  std::string dir = cifar_dir(cfg);
  const data::Normalize norm = data::Normalize::cifar10();
  std::shared_ptr<const data::Dataset> train, test;
  // An image-folder root (DIR/train, DIR/test, or one level below, as the tarball unpacks),
  // else the binary release.
  fs::path root = dir;
  if (!fs::is_directory(root / "train") && fs::is_directory(root / "cifar10-jpg" / "train")) root /= "cifar10-jpg";
  if (fs::is_directory(root / "train") && fs::is_directory(root / "test")) {
    auto tr = std::make_shared<data::ImageFolderDataset>((root / "train").string(), norm);
    auto te = std::make_shared<data::ImageFolderDataset>((root / "test").string(), norm);
    EMBER_CHECK(tr->classes() == te->classes(), "cifar10: ", root.string(),
                ": train/ and test/ have different class folders");
    EMBER_CHECK(tr->image_shape() == Shape({3, 32, 32}), "cifar10: ", root.string(),
                ": expected 32x32 images");
    train = interleave_classes(tr);
    test = interleave_classes(te);
  } else {
    train = std::make_shared<data::Cifar10Dataset>(dir, true, norm);
    test = std::make_shared<data::Cifar10Dataset>(dir, false, norm);
  }
  // Training only: random 32x32 crop of the 4-pixel zero-padded image and horizontal flip,
  // drawn per (seed, epoch, sample) so that resume stays exact.
  train = std::make_shared<data::AugmentedDataset>(
      train, data::AugmentOptions{.padding = 4, .hflip = true, .normalize = norm}, cfg.seed);
  return {train, test};
}

}  // namespace

int main(int argc, char** argv) {
  app::AppSpec spec;
  spec.name = "cifar";
  spec.models = nn::model_names("3x32x32");
  spec.datasets = {"cifar10"};
  app::TrainConfig& defaults = spec.defaults;  // README "The cifar app": ResNet-20, SGD 0.1/0.9/5e-4, cosine, 30 epochs
  defaults.model = "resnet20";
  defaults.dataset = "cifar10";
  defaults.epochs = 30;
  defaults.batch_size = 128;
  defaults.test_batch_size = 1000;
  defaults.lr = 0.1;
  defaults.momentum = 0.9;
  defaults.weight_decay = 5e-4;
  defaults.scheduler = "cosine";
  defaults.out = "out/cifar";
  return app::run_classifier_app(argc, argv, spec, cifar_datasets);
}
