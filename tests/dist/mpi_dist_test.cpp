// The data-parallel proofs on several processes: run by CTest under both launchers, as
// `tests/dist/run_mpi.sh 2 dist_mpi_test` (mpirun -np 2, MPI collectives: dist_mpi_np2) and
// as `dist_launch --nproc-per-node 2 -- dist_mpi_test` (ember's launcher, the env:// way:
// Gloo over the TCP store: dist_gloo_np2). Every rank runs every test in
// the same order (the collectives must match); rank 0 prints the usual report, the other
// ranks only their failures.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "../dist_common.h"
#include "../test_util.h"

namespace ember {
namespace {

using dist::DDP;
using dist::DDPEvent;
using test::all_close;

dist::ProcessGroup& pg() { return dist::default_group(); }

/// Whether `t` holds the same values on every rank (compared with rank 0's, exactly).
::testing::AssertionResult same_on_all_ranks(const Tensor& t) {
  Tensor mine = t.detach().contiguous().clone();
  Tensor root = mine.clone();
  pg().broadcast(root, 0)->wait();
  auto r = all_close(mine, root, 0, 0);
  // Every rank learns whether any rank differs, so all take the same path afterwards.
  Tensor bad = scalar_tensor(r ? 0.0 : 1.0, {.dtype = DType::f64});
  pg().allreduce(bad)->wait();
  if (bad.item() == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad.item() << " rank(s) differ from rank 0"
                                       << (r ? "" : std::string(": ") + r.message());
}

TEST(DistMpi, TheGroupComesFromTheLauncher) {
  ASSERT_NE(pg().launch(), "none") << "run this program under mpirun (tests/dist/run_mpi.sh 2 ...) or "
                                      "dist_launch --nproc-per-node 2 -- ...";
  ASSERT_GE(pg().world_size(), 2);
  // mpirun: MPI's collectives; ember's launcher: Gloo's, rendezvous through the TCP store.
  EXPECT_EQ(pg().communicator(kCPU).backend(), pg().uses_mpi() ? "mpi" : "gloo");
  EXPECT_EQ(pg().launch(), pg().uses_mpi() ? "mpi" : "env");
  EXPECT_EQ(pg().store() != nullptr, !pg().uses_mpi());
  // All ranks run on this machine: local rank == rank.
  EXPECT_EQ(pg().local_rank(), pg().rank());
  EXPECT_EQ(pg().local_world_size(), pg().world_size());
}

TEST(DistMpi, CollectivesOnCpuTensors) {
  const int r = pg().rank(), w = pg().world_size();
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64, DType::i32}) {
    Tensor t = full({5}, double(r + 1), {.dtype = dt});
    pg().allreduce(t, dist::ReduceOp::sum)->wait();
    EXPECT_EQ(t.to_vector<double>(), std::vector<double>(5, w * (w + 1) / 2.0)) << dtype_name(dt);
    if (is_floating(dt)) {
      Tensor a = full({3}, double(2 * r), {.dtype = dt});
      pg().allreduce(a, dist::ReduceOp::average)->wait();
      EXPECT_EQ(a.to_vector<double>(), std::vector<double>(3, double(w - 1))) << dtype_name(dt);
    } else {
      EXPECT_THROW(pg().allreduce(t, dist::ReduceOp::average), dist::Error);
    }
  }
  Tensor b = full({4}, double(r), {.dtype = DType::f64});
  pg().broadcast(b, w - 1)->wait();
  EXPECT_EQ(b.to_vector<double>(), std::vector<double>(4, double(w - 1)));

  Tensor out = zeros({2 * w}, {.dtype = DType::i64});
  pg().allgather(full({2}, double(r), {.dtype = DType::i64}), out)->wait();
  std::vector<int64_t> expect;
  for (int k = 0; k < w; ++k) expect.insert(expect.end(), {k, k});
  EXPECT_EQ(out.to_vector<int64_t>(), expect);

  // in = arange(2w) + r; rank r gets sum over ranks of in[2r], in[2r+1].
  Tensor in = arange(0, 2.0 * w, 1, {.dtype = DType::f32}) + double(r);
  Tensor rs = zeros({2});
  pg().reduce_scatter(in, rs, dist::ReduceOp::sum)->wait();
  double rank_sum = w * (w - 1) / 2.0;
  EXPECT_EQ(rs.to_vector<double>(), (std::vector<double>{w * 2.0 * r + rank_sum, w * (2.0 * r + 1) + rank_sum}));

  // Larger than one transport segment (Gloo sends 1 MiB pieces; MPI its own): 12 MB.
  Tensor big = full({3'000'000}, double(r + 1));
  pg().allreduce(big)->wait();
  std::vector<float> bv = big.to_vector<float>();
  EXPECT_EQ(bv.front(), float(w * (w + 1) / 2));
  EXPECT_EQ(bv.back(), float(w * (w + 1) / 2));
  EXPECT_EQ(std::count(bv.begin(), bv.end(), float(w * (w + 1) / 2)), 3'000'000);

  // Several in flight, completed in any order.
  Tensor x = ones({1000}), y = ones({10});
  auto wx = pg().allreduce(x), wy = pg().allreduce(y);
  wy->wait();
  wx->wait();
  EXPECT_EQ(x.to_vector<float>()[999], float(w));
  EXPECT_EQ(y.to_vector<float>()[0], float(w));
  pg().barrier();
  EXPECT_THROW(pg().allgather(ones({2}), zeros({3})), dist::Error);
}

// The proof: N ranks at batch 64/N produce the parameters one process gets at
// batch 64 on the same samples, after several SGD steps with momentum and weight decay.
// (With N ranks: 32 per rank against one process at 32 N.)
void expect_data_parallel_equals_full_batch(const std::string& model, DType dt, double rtol, double atol,
                                            dist::DDPOptions opt, Device dev = kCPU) {
  const int steps = 3;
  const int64_t global = 32 * pg().world_size();
  auto d = test::make_data(global * steps, 21, dt, dev);
  nn::ModulePtr ref = test::make_net(model, 11, dt, dev);
  test::train_plain(*ref, d, global, steps);
  // Ranks other than 0 start from other weights: DDP must broadcast rank 0's.
  nn::ModulePtr m = test::make_net(model, pg().rank() == 0 ? 11 : 100 + uint64_t(pg().rank()), dt, dev);
  DDP ddp(m, opt);
  test::train_ddp(ddp, d, global, steps);
  auto a = ref->named_parameters(), b = m->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(all_close(b[i].second, a[i].second, rtol, atol)) << a[i].first;
    EXPECT_TRUE(same_on_all_ranks(b[i].second)) << a[i].first;
  }
}

TEST(DistMpi, RanksAt32EqualOneProcessAt64InF64) {
  expect_data_parallel_equals_full_batch("lenet", DType::f64, 1e-12, 1e-12, {});
}

TEST(DistMpi, RanksAt32EqualOneProcessAt64InF32) {
  expect_data_parallel_equals_full_batch("lenet", DType::f32, 1e-5, 1e-6, {});
}

TEST(DistMpi, ManySmallBucketsWithAndWithoutOverlap) {
  for (bool overlap : {true, false})
    expect_data_parallel_equals_full_batch("lenet", DType::f64, 1e-12, 1e-12,
                                           {.first_bucket_mb = 0.002, .bucket_mb = 0.05, .overlap = overlap});
}

TEST(DistMpi, Fp16CompressionStaysClose) {
  expect_data_parallel_equals_full_batch("small", DType::f32, 2e-2, 2e-3,
                                         {.first_bucket_mb = 0.01, .compression = dist::GradCompression::fp16});
}

TEST(DistMpi, FirstBucketStartsBeforeBackwardEnds) {
  nn::ModulePtr m = test::make_net("lenet", 1, DType::f32);
  DDP ddp(m, {.first_bucket_mb = 4000.0 / (1 << 20), .bucket_mb = 100000.0 / (1 << 20)});
  std::vector<DDPEvent> ev;
  ddp.set_observer([&](const DDPEvent& e) { ev.push_back(e); });
  auto d = test::make_data(8, 1 + uint64_t(pg().rank()), DType::f32);
  cross_entropy(ddp(d.images), d.labels).backward();
  size_t in_backward = ev.size();
  ddp.finish();
  EXPECT_EQ(ev.size(), in_backward);
  auto pos = [&](DDPEvent::Kind k, int64_t i) {
    return size_t(std::find_if(ev.begin(), ev.end(), [&](const DDPEvent& e) { return e.kind == k && e.index == i; }) -
                  ev.begin());
  };
  // Bucket 0 (fc3, fc2) starts its allreduce while conv1's gradient is still to come.
  EXPECT_LT(pos(DDPEvent::bucket_started, 0), pos(DDPEvent::grad_ready, 0));
  EXPECT_LT(pos(DDPEvent::bucket_started, 1), pos(DDPEvent::grad_ready, 0));
  EXPECT_LT(pos(DDPEvent::bucket_finished, 2), ev.size());
  for (const auto& [name, p] : m->named_parameters()) EXPECT_TRUE(same_on_all_ranks(p.grad())) << name;
}

TEST(DistMpi, UnusedParameterIsAnErrorNamingIt) {
  manual_seed(1);
  auto net = std::make_shared<test::SmallNet>(/*with_unused=*/true);
  DDP ddp(net);
  auto d = test::make_data(8, 1, DType::f32);
  cross_entropy(ddp(d.images), d.labels).backward();
  try {
    ddp.finish();
    ADD_FAILURE() << "expected an error";
  } catch (const dist::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'unused.weight', 'unused.bias'"), std::string::npos) << e.what();
  }
}

TEST(DistMpi, ParameterUsedOnOneRankOnlyWithFindUnused) {
  const int w = pg().world_size();
  auto d = test::make_data(8, 1, DType::f64);
  // Reference: rank 0's gradient of unused.weight; the other ranks contribute zero.
  manual_seed(1);
  auto ref = std::make_shared<test::SmallNet>(true);
  ref->to(DType::f64);
  ref->use_unused_ = true;
  cross_entropy((*ref)(d.images), d.labels).backward();
  Tensor expect = ref->unused->weight.grad() * (1.0 / w);

  manual_seed(1);
  auto net = std::make_shared<test::SmallNet>(true);
  net->to(DType::f64);
  net->use_unused_ = pg().rank() == 0;
  DDP ddp(net, {.find_unused_parameters = true});
  cross_entropy(ddp(d.images), d.labels).backward();
  ddp.finish();
  EXPECT_TRUE(all_close(net->unused->weight.grad(), expect, 1e-12, 1e-15));
}

TEST(DistMpi, NoSyncAccumulatesLocallyThenReducesTheSum) {
  const int r = pg().rank(), w = pg().world_size();
  auto d = test::make_data(16 * w, 9, DType::f64);
  // Rank k's micro-batches: rows [16k, 16k+8) and [16k+8, 16k+16).
  nn::ModulePtr ref = test::make_net("small", 3, DType::f64);
  Tensor total;
  for (int k = 0; k < w; ++k)
    for (int h = 0; h < 2; ++h) {
      Tensor l = cross_entropy((*ref)(d.images.narrow(0, 16 * k + 8 * h, 8)), d.labels.narrow(0, 16 * k + 8 * h, 8));
      total = total.defined() ? total + l : l;
    }
  (total * (1.0 / w)).backward();

  nn::ModulePtr m = test::make_net("small", 3, DType::f64);
  DDP ddp(m);
  {
    auto guard = ddp.no_sync();
    cross_entropy(ddp(d.images.narrow(0, 16 * r, 8)), d.labels.narrow(0, 16 * r, 8)).backward();
  }
  EXPECT_FALSE(same_on_all_ranks(m->parameters()[0].grad())) << "no_sync must leave the gradients local";
  cross_entropy(ddp(d.images.narrow(0, 16 * r + 8, 8)), d.labels.narrow(0, 16 * r + 8, 8)).backward();
  ddp.finish();
  auto a = ref->named_parameters(), b = m->named_parameters();
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(all_close(b[i].second.grad(), a[i].second.grad(), 1e-12, 1e-14)) << a[i].first;
}

TEST(DistMpi, BuffersFollowRankZero) {
  manual_seed(2);
  auto bn = std::make_shared<nn::BatchNorm2d>(3);
  Tensor rm = bn->named_buffers()[0].second;  // running_mean
  {
    NoGradGuard g;
    rm.fill_(double(pg().rank()));
  }
  DDP ddp(bn);
  EXPECT_EQ(rm.to_vector<float>(), std::vector<float>(3, 0.0f)) << "broadcast at construction";
  {
    NoGradGuard g;
    rm.fill_(double(pg().rank() + 5));
  }
  manual_seed(3);
  Tensor x = randn({4, 3, 2, 2});
  ddp(x);  // broadcasts rank 0's buffers first, then updates them with the same batch
  EXPECT_TRUE(same_on_all_ranks(rm));
}

TEST(DistMpi, SamplersAcrossRanks) {
  const int r = pg().rank(), w = pg().world_size();
  // Training shards: same size on every rank, together every sample (plus padding).
  const int64_t n = 101;
  data::DistributedSampler s(n, r, w, true, 7);
  auto mine = s.indices(3);
  Tensor all = zeros({s.size() * w}, {.dtype = DType::i64});
  pg().allgather(from_vector(mine), all)->wait();
  auto v = all.to_vector<int64_t>();
  std::vector<int> count(static_cast<size_t>(n), 0);
  for (int64_t i : v) ++count[size_t(i)];
  int64_t extra = s.size() * w - n;
  int repeated = 0;
  for (int c : count) {
    EXPECT_GE(c, 1);
    repeated += c - 1;
  }
  EXPECT_EQ(repeated, extra);
  // Evaluation shards: the sums over ranks count every test sample once.
  dist::ShardSampler e(n, r, w);
  double cnt = 0, sum_i = 0;
  for (int64_t i : e.indices(0)) {
    cnt += 1;
    sum_i += double(i);
  }
  auto tot = dist::allreduce_sum(pg(), {cnt, sum_i});
  EXPECT_EQ(tot[0], double(n));
  EXPECT_EQ(tot[1], double(n * (n - 1) / 2));
}

// ---- NCCL: the same proofs with each rank on its GPU (skipped on every rank without GPUs).
#define REQUIRE_RANK_GPU()                                                                     \
  do {                                                                                        \
    if (cuda::device_count() < pg().local_world_size())                                         \
      GTEST_SKIP() << "NCCL path: needs one GPU per rank, " << cuda::device_count() << " for "     \
                   << pg().local_world_size() << " ranks on this node";                            \
  } while (0)

TEST(DistMpi, NcclCollectivesOnEachRanksGpu) {
  REQUIRE_RANK_GPU();
  const Device g = pg().default_device();
  const int r = pg().rank(), w = pg().world_size();
  EXPECT_EQ(pg().communicator(g).backend(), "nccl");
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    Tensor t = full({1000}, double(r + 1), {.dtype = dt, .device = g});
    pg().allreduce(t)->wait();
    EXPECT_EQ(t.to_vector<double>(), std::vector<double>(1000, w * (w + 1) / 2.0)) << dtype_name(dt);
    Tensor a = full({7}, double(2 * r), {.dtype = dt, .device = g});
    pg().allreduce(a, dist::ReduceOp::average)->wait();
    EXPECT_EQ(a.to_vector<double>(), std::vector<double>(7, double(w - 1))) << dtype_name(dt);
  }
  Tensor b = full({5}, double(r), {.device = g});
  pg().broadcast(b, w - 1)->wait();
  EXPECT_EQ(b.to_vector<float>(), std::vector<float>(5, float(w - 1)));
  Tensor out = zeros({2 * w}, {.device = g});
  pg().allgather(full({2}, double(r), {.device = g}), out)->wait();
  EXPECT_EQ(out.to_vector<float>()[size_t(2 * w - 1)], float(w - 1));
  Tensor in = arange(0, 2.0 * w, 1, {.dtype = DType::f32}).to(g) + double(r);
  Tensor rs = zeros({2}, {.device = g});
  pg().reduce_scatter(in, rs)->wait();
  EXPECT_EQ(rs.to_vector<float>()[0], float(w * 2.0 * r + w * (w - 1) / 2.0));
  pg().communicator(g).barrier()->wait();
}

TEST(DistMpi, NcclRanksEqualOneProcessOnTheFullBatch) {
  REQUIRE_RANK_GPU();
  expect_data_parallel_equals_full_batch("lenet", DType::f32, 1e-4, 1e-5, {.first_bucket_mb = 0.01},
                                         pg().default_device());
  expect_data_parallel_equals_full_batch("small", DType::f32, 2e-2, 2e-3,
                                         {.compression = dist::GradCompression::fp16}, pg().default_device());
}

// train::Trainer on 2 ranks: DDP keeps the weights equal, every rank's hooks see the same
// iterations and the same (all-rank) test metrics, and rank 0 alone writes the files.
TEST(DistMpi, TrainerKeepsRanksInStepAndRankZeroWrites) {
  const int64_t n = 256;
  std::vector<uint8_t> px(static_cast<size_t>(n) * 784, 0);
  std::vector<int64_t> labels(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < n; ++i) {
    labels[size_t(i)] = i % 10;
    for (int64_t j = 0; j < 784; ++j) px[size_t(i * 784 + j)] = uint8_t((i * 31 + j * (i % 10 + 1)) % 251);
  }
  auto ds = std::make_shared<data::ImageTensorDataset>(from_vector(px, {n, 1, 28, 28}), from_vector(labels, {n}),
                                                       Shape{1, 28, 28});
  const int rank = pg().rank(), world = pg().world_size();
  auto train_loader = std::make_shared<data::DataLoader>(
      ds, data::DataLoaderOptions{.batch_size = 16, .seed = 1},
      std::make_shared<data::DistributedSampler>(n, rank, world, true, 1));
  auto test_loader = std::make_shared<data::DataLoader>(ds, data::DataLoaderOptions{.batch_size = 50},
                                                        std::make_shared<dist::ShardSampler>(n, rank, world));
  // A different seed per rank: DDP must broadcast rank 0's initial weights.
  nn::ModulePtr model = test::make_net("small", 10 + uint64_t(rank), DType::f32);
  auto opt = std::make_shared<optim::SGD>(model->parameters(), test::sgd_options());
  struct Count : train::Hook {
    std::string name() const override { return "Count"; }
    void after_iteration(train::Trainer& t) override { last = t.state().iteration; }
    void after_epoch(train::Trainer& t) override { acc.push_back(t.state().metrics.get("test_acc")); }
    int64_t last = 0;
    std::vector<double> acc;
  };
  // One folder name for all ranks (rank 0's pid), so that a rank > 0 writing would show.
  std::vector<double> pid = dist::allreduce_sum(pg(), {rank == 0 ? double(::getpid()) : 0.0});
  std::string out = "/tmp/ember_dist_trainer_" + std::to_string(int64_t(pid[0]));
  train::Trainer trainer(model, [](const Tensor& o, const Tensor& y) { return cross_entropy(o, y); }, opt, nullptr,
                         train_loader, test_loader, {.epochs = 2, .out = out, .save_every = 5, .progress = false});
  auto count = std::make_shared<Count>();
  trainer.register_hook(count);
  trainer.fit();
  EXPECT_EQ(count->last, 2 * (n / world / 16));
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(same_on_all_ranks(p));
  ASSERT_EQ(count->acc.size(), 2u);
  EXPECT_TRUE(same_on_all_ranks(from_vector(count->acc)));
  pg().barrier();
  if (rank == 0) {
    EXPECT_TRUE(std::filesystem::exists(out + "/last.ckpt"));
    std::ifstream f(out + "/metrics.jsonl");
    std::string line;
    int rows = 0;
    while (std::getline(f, line)) ++rows;
    EXPECT_EQ(rows, 2);  // one writer
    std::filesystem::remove_all(out);
  }
}

}  // namespace
}  // namespace ember
