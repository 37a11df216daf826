// SyncBatchNorm on several processes (CTest: dist_sync_bn_np2, `mpirun -np 2`): W ranks
// sharing a global batch of 32 with SyncBatchNorm end with the weights and running
// statistics of one process training BatchNorm2d on all 32, with even and uneven per-rank
// batches. Every rank runs every test in the same order (the collectives must match).
#include <gtest/gtest.h>

#include "../dist_common.h"
#include "../test_util.h"

namespace ember {
namespace {

using test::all_close;

dist::ProcessGroup& pg() { return dist::default_group(); }

/// conv-BN-relu twice and a linear head, on 3x8x8 inputs.
struct BnNet : nn::Module {
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
  std::shared_ptr<nn::Linear> fc;
  BnNet() : Module("BnNet") {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(3, 8, 3, nn::Conv2dOptions{.padding = {1, 1}}));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(8));
    conv2 = register_module("conv2",
                            std::make_shared<nn::Conv2d>(8, 8, 3, nn::Conv2dOptions{.stride = {2, 2}, .padding = {1, 1}}));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(8));
    fc = register_module("fc", std::make_shared<nn::Linear>(8 * 4 * 4, 10));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn1->forward(conv1->forward(x)));
    h = relu(bn2->forward(conv2->forward(h)));
    return fc->forward(h.flatten(1));
  }
};

std::shared_ptr<BnNet> make_bn_net(DType dt, uint64_t seed) {
  manual_seed(seed);
  auto m = std::make_shared<BnNet>();
  m->to(dt);
  return m;
}

/// The rows of global batch t that rank r trains on: contiguous chunks, of equal sizes or
/// (uneven) rank 0 taking 4 more per other rank and the others 4 fewer.
std::vector<int64_t> rank_rows(int64_t t, int64_t global, int r, int w, bool uneven) {
  std::vector<int64_t> sizes(size_t(w), global / w);
  if (uneven)
    for (int k = 1; k < w; ++k) sizes[0] += 4, sizes[size_t(k)] -= 4;
  int64_t start = t * global;
  for (int k = 0; k < r; ++k) start += sizes[size_t(k)];
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < sizes[size_t(r)]; ++i) rows.push_back(start + i);
  return rows;
}

void expect_sync_bn_equals_full_batch(DType dt, bool uneven, double rtol, double atol) {
  const int steps = 4, w = pg().world_size(), r = pg().rank();
  const int64_t global = 32;
  manual_seed(5);
  Tensor images = (randn({global * steps, 3, 8, 8}) * 1.5 + 0.5).to(dt);
  Tensor labels = randint(0, 10, {global * steps});

  auto ref = make_bn_net(dt, 11);
  {
    optim::SGD opt(ref->parameters(), test::sgd_options());
    for (int t = 0; t < steps; ++t) {
      Tensor idx = arange(double(t * global), double((t + 1) * global), 1, {.dtype = DType::i64});
      ref->zero_grad();
      cross_entropy((*ref)(index_select(images, 0, idx)), index_select(labels, 0, idx)).backward();
      opt.step();
    }
  }

  auto m = make_bn_net(dt, 11);
  EXPECT_EQ(dist::convert_sync_batchnorm(*m), 2);
  dist::DDP ddp(m);
  optim::SGD opt(m->parameters(), test::sgd_options());
  for (int t = 0; t < steps; ++t) {
    Tensor idx = from_vector(rank_rows(t, global, r, w, uneven));
    ddp.zero_grad();
    // DDP averages over the W ranks: W / global * (this rank's sum) makes the average the
    // mean over the global batch whatever each rank's share.
    Tensor loss = cross_entropy(ddp(index_select(images, 0, idx)), index_select(labels, 0, idx), Reduction::sum) *
                  (double(w) / double(global));
    loss.backward();
    ddp.finish();
    opt.step();
  }
  auto a = ref->state_dict(), b = m->state_dict();
  for (const std::string& k : a.keys()) {
    EXPECT_TRUE(all_close(b.at(k), a.at(k), rtol, atol)) << k << (uneven ? " (uneven)" : "");
  }
  EXPECT_EQ(m->bn1->num_batches_tracked.item<int64_t>(), steps);
}

TEST(DistSyncBn, TheGroupComesFromTheLauncher) {
  ASSERT_NE(pg().launch(), "none") << "run this program under mpirun (tests/dist/run_mpi.sh 2 ...) or "
                                      "dist_launch --nproc-per-node 2 -- ...";
  ASSERT_GE(pg().world_size(), 2);
  ASSERT_LE(pg().world_size(), 4);  // rank_rows' uneven split needs 32 / W > 4
}

TEST(DistSyncBn, RanksEqualOneProcessOnTheWholeBatchF64) { expect_sync_bn_equals_full_batch(DType::f64, false, 1e-10, 1e-12); }
TEST(DistSyncBn, UnevenRankBatchesF64) { expect_sync_bn_equals_full_batch(DType::f64, true, 1e-10, 1e-12); }
TEST(DistSyncBn, RanksEqualOneProcessOnTheWholeBatchF32) { expect_sync_bn_equals_full_batch(DType::f32, false, 2e-4, 2e-5); }
TEST(DistSyncBn, UnevenRankBatchesF32) { expect_sync_bn_equals_full_batch(DType::f32, true, 2e-4, 2e-5); }

TEST(DistSyncBn, AllReduceSumIsDifferentiable) {
  const int w = pg().world_size(), r = pg().rank();
  Tensor x = full({3}, double(r + 1), {.dtype = DType::f64}).requires_grad_();
  Tensor y = dist::all_reduce_sum(x * 2.0, pg());
  EXPECT_EQ(y.to_vector<double>(), std::vector<double>(3, double(w * (w + 1))));
  // Rank r's loss is (r + 1) * sum(y): every rank's x gets 2 * sum_s (s + 1).
  (y * double(r + 1)).sum().backward();
  EXPECT_EQ(x.grad().to_vector<double>(), std::vector<double>(3, double(w * (w + 1))));
}

}  // namespace
}  // namespace ember
