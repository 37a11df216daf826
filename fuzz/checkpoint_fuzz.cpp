// libFuzzer target: train::Trainer::load_checkpoint, the training checkpoint reader (a
// safetensors file whose "ember" metadata is JSON: format version, model name, optimizer and
// scheduler scalars, loader position, RNG state, epoch sums; Note [Exact resume]) applied to
// a small model with SGD momentum buffers and a cosine schedule.
//
// Seeds: EMBER_FUZZ_WRITE_SEEDS=DIR makes the target write real checkpoints of this very
// trainer there (mid-epoch, with epoch sums, and at an epoch's end) and exit; scripts/fuzz.sh
// does that before fuzzing, so the corpus starts from files the real writer produced.
#include <cstdlib>

#include "fuzz_common.h"
#include "train/trainer.h"

namespace {

using namespace ember;

struct Tiny : nn::Module {
  std::shared_ptr<nn::Linear> fc;
  Tiny() : Module("Tiny") { fc = register_module("fc", std::make_shared<nn::Linear>(4, 3)); }
  Tensor forward(const Tensor& x) override { return fc->forward(flatten(x, 1)); }
};

Tensor ce(const Tensor& out, const Tensor& y) { return cross_entropy(out, y); }

std::unique_ptr<train::Trainer> make_trainer() {
  manual_seed(1);
  // 12 images of 1x2x2 (u8), 3 classes.
  Tensor x = empty({12, 1, 2, 2}, {.dtype = DType::u8});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = uint8_t(i * 37 % 251);
  Tensor y = empty({12}, {.dtype = DType::i64});
  for (int64_t i = 0; i < 12; ++i) y.data<int64_t>()[i] = i % 3;
  auto ds = std::make_shared<data::ImageTensorDataset>(x, y, Shape{1, 2, 2});
  auto loader = std::make_shared<data::DataLoader>(ds, data::DataLoaderOptions{.batch_size = 4, .shuffle = true, .seed = 5});
  auto model = std::make_shared<Tiny>();
  auto opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9});
  auto sched = optim::make_scheduler(*opt, {.kind = "cosine", .total_steps = 6, .warmup_steps = 2});
  train::TrainerOptions o;
  o.epochs = 2;
  o.model_name = "tiny";
  o.progress = false;
  o.default_hooks = false;
  return std::make_unique<train::Trainer>(model, ce, opt, sched, loader, nullptr, o);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("EMBER_FUZZ_WRITE_SEEDS")) {
    auto t = make_trainer();
    t->fit();  // two epochs: momentum buffers, a stepped schedule, a moved loader and RNG
    t->save_checkpoint(std::string(dir) + "/end_of_epoch.ckpt", /*epoch_end=*/true);
    t->save_checkpoint(std::string(dir) + "/mid_epoch.ckpt");
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = ember::fuzz::scratch_root() + "/input.ckpt";
  static std::unique_ptr<train::Trainer> trainer = make_trainer();
  ember::fuzz::write_input(path, data, size);
  ember::fuzz::expect_error_or_success([&] {
    trainer->load_checkpoint(path);
    // What was restored must be usable: the weights and buffers as numbers.
    for (const auto& [k, t] : trainer->model().state_dict()) (void)t.sum().item<double>();
    if (trainer->scheduler()) (void)trainer->scheduler()->get_lr();
  });
  return 0;
}
