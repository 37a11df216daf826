// Your own model on your own data with train::Trainer, in a page: points in the plane
// labelled by the ring they fall in, an MLP, SGD with a cosine schedule, and a hook of ours
// that stops once the test accuracy is good enough. Exits non-zero unless it got there.
//   ./custom_trainer [OUT]   (OUT/ gets train.log, metrics.jsonl, last.ckpt, tb/)
#include <cmath>
#include <cstdio>
#include <numbers>

#include "ember.h"

using namespace ember;

// A dataset is anything that says which named fields its samples have and fills batches of
// them (Note [Named fields] in data/dataset.h). The Trainer trains classifiers: it feeds the
// "image" field to the model and scores it against "label". Here the "image" is the point
// (x, y) and the label the ring 0, 1 or 2 it lies in, generated on the fly from the index
// (deterministic). (Data already in memory: data::TensorDataset({{"image", x}, {"label", y}}).)
class Rings : public data::Dataset {
 public:
  Rings(int64_t n, uint64_t seed) : n_(n), seed_(seed) {}
  int64_t size() const override { return n_; }
  std::vector<data::Field> fields() const override {
    return {{"image", DType::f32, {2}}, {"label", DType::i64, {}}};
  }
  void fill(std::span<const int64_t> idx, int64_t /*epoch*/, const TensorList& out) const override {
    check_out(int64_t(idx.size()), out, "Rings");
    float* images = out[0].data<float>();
    int64_t* labels = out[1].data<int64_t>();
    for (size_t i = 0; i < idx.size(); ++i) {
      uint64_t h = (uint64_t(idx[i]) + 1) * 0x9E3779B97F4A7C15ull ^ seed_;
      auto uniform = [&h] { h ^= h >> 33; h *= 0xff51afd7ed558ccdull; h ^= h >> 33; return double(h >> 11) / 9007199254740992.0; };
      int64_t ring = idx[i] % 3;
      double r = 0.3 + 0.3 * double(ring) + 0.08 * (uniform() - 0.5), a = 2 * std::numbers::pi * uniform();
      images[2 * i] = float(r * std::cos(a));
      images[2 * i + 1] = float(r * std::sin(a));
      labels[i] = ring;
    }
  }
 private:
  int64_t n_;
  uint64_t seed_;
};

// A model is an nn::Module: register the layers, write forward().
struct RingNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2, fc3;
  RingNet() : Module("RingNet") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(2, 32));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 32));
    fc3 = register_module("fc3", std::make_shared<nn::Linear>(32, 3));
  }
  Tensor forward(const Tensor& x) override {
    return fc3->forward(tanh(fc2->forward(tanh(fc1->forward(flatten(x, 1))))));
  }
};

// A hook: reads the state after each epoch and asks the trainer to stop.
struct GoodEnough : train::Hook {
  double target;
  explicit GoodEnough(double t) : target(t) {}
  std::string name() const override { return "GoodEnough"; }
  void after_epoch(train::Trainer& t) override {
    double acc = t.state().metrics.get("test_acc");
    if (acc >= target) t.state().request_stop("test accuracy " + std::to_string(acc) + "% reached the target");
  }
};

int main(int argc, char** argv) {
  std::string out = argc > 1 ? argv[1] : "out/custom_trainer";
  manual_seed(0);
  auto model = std::make_shared<RingNet>();
  auto train_data = std::make_shared<data::DataLoader>(
      std::make_shared<Rings>(3000, 1), data::DataLoaderOptions{.batch_size = 50, .shuffle = true, .seed = 1});
  auto test_data = std::make_shared<data::DataLoader>(std::make_shared<Rings>(600, 2),
                                                      data::DataLoaderOptions{.batch_size = 200});
  auto opt = std::make_shared<optim::SGD>(model->parameters(), optim::SGDOptions{.lr = 0.2, .momentum = 0.9});
  const int64_t epochs = 30;
  auto sched = std::make_shared<optim::CosineAnnealingLR>(*opt, epochs * train_data->num_batches());
  auto loss = [](const Tensor& logits, const Tensor& labels) { return cross_entropy(logits, labels); };
  train::Trainer trainer(model, loss, opt, sched, train_data, test_data,
                         {.epochs = epochs, .out = out, .log_interval = 30, .sched_unit = "iteration",
                          .tensorboard = out + "/tb"});
  trainer.register_hook(std::make_shared<GoodEnough>(97.0));
  train::FitResult r = trainer.fit();
  std::printf("best test accuracy %.2f%% after %lld iterations%s\n", r.best_acc, (long long)r.iteration,
              r.stopped ? " (stopped early by GoodEnough)" : "");
  return r.best_acc >= 97.0 ? 0 : 1;
}
