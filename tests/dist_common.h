#pragma once
// Shared by the data-parallel tests (dist_test.cpp in one process, dist/mpi_dist_test.cpp
// under mpirun): synthetic data, small models, and training loops with and without DDP.
#include <memory>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "ember.h"
#include "optim/sgd.h"

namespace ember::test {

struct Synthetic {
  Tensor images;  // (N, 1, 28, 28)
  Tensor labels;  // (N) i64
};

inline Synthetic make_data(int64_t n, uint64_t seed, DType dtype, Device device = kCPU) {
  manual_seed(seed);
  return {randn({n, 1, 28, 28}).to(device, dtype), randint(0, 10, {n}).to(device)};
}

/// A small MLP with an optional extra layer that forward never uses.
struct SmallNet : nn::Module {
  std::shared_ptr<nn::Linear> fc1, fc2, unused;
  bool use_unused_ = false;
  explicit SmallNet(bool with_unused = false) : Module("SmallNet") {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(784, 32));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(32, 10));
    if (with_unused) unused = register_module("unused", std::make_shared<nn::Linear>(32, 10));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(fc1->forward(x.flatten(1)));
    Tensor y = fc2->forward(h);
    if (unused && use_unused_) y = y + unused->forward(h);
    return y;
  }
};

inline nn::ModulePtr make_net(const std::string& name, uint64_t seed, DType dtype, Device device = kCPU) {
  manual_seed(seed);
  nn::ModulePtr m = name == "small" ? std::make_shared<SmallNet>() : nn::make_model(name);
  m->to(dtype);
  m->to(device);
  return m;
}

inline optim::SGDOptions sgd_options() { return {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4}; }

/// Rows `rows` of the data.
inline std::pair<Tensor, Tensor> batch_of(const Synthetic& d, const std::vector<int64_t>& rows) {
  Tensor idx = from_vector(rows).to(d.images.device());
  return {index_select(d.images, 0, idx), index_select(d.labels, 0, idx)};
}

/// One process, full batches: step t uses rows [t*B, (t+1)*B).
inline void train_plain(nn::Module& m, const Synthetic& d, int64_t batch, int steps) {
  optim::SGD opt(m.parameters(), sgd_options());
  for (int t = 0; t < steps; ++t) {
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < batch; ++i) rows.push_back(t * batch + i);
    auto [x, y] = batch_of(d, rows);
    m.zero_grad();
    cross_entropy(m(x), y).backward();
    opt.step();
  }
}

/// Data parallel: rank r of W takes the rows of global batch t that DistributedSampler
/// (no shuffle) gives it: t*B + r, t*B + r + W, ... (B/W rows each).
inline void train_ddp(dist::DDP& ddp, const Synthetic& d, int64_t global_batch, int steps) {
  int r = ddp.process_group().rank(), w = ddp.process_group().world_size();
  optim::SGD opt(ddp.module().parameters(), sgd_options());
  for (int t = 0; t < steps; ++t) {
    data::DistributedSampler s(global_batch, r, w, /*shuffle=*/false);
    std::vector<int64_t> rows;
    for (int64_t i : s.indices(0)) rows.push_back(t * global_batch + i);
    auto [x, y] = batch_of(d, rows);
    ddp.zero_grad();
    cross_entropy(ddp(x), y).backward();
    ddp.finish();
    opt.step();
  }
}

}  // namespace ember::test
