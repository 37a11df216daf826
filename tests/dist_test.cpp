// Data-parallel pieces in one process (a world of one): bucket assignment, gradient views,
// the overlap order of bucket allreduces within backward, unused parameters, no_sync,
// fp16 compression, samplers and the local communicator. The multi-process proofs
// (2 ranks x 32 == 1 process x 64, ...) are in dist/mpi_dist_test.cpp, run by mpirun.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <set>

#include "dist_common.h"
#include "test_util.h"

namespace ember {
namespace {

using dist::DDP;
using dist::DDPEvent;
using test::all_close;

TEST(DistProcessGroup, WithoutALauncherIsAWorldOfOneWithoutMpi) {
  ASSERT_EQ(std::getenv("OMPI_COMM_WORLD_SIZE"), nullptr) << "run this test without mpirun";
  dist::ProcessGroup& pg = dist::default_group();
  EXPECT_EQ(pg.rank(), 0);
  EXPECT_EQ(pg.world_size(), 1);
  EXPECT_EQ(pg.local_rank(), 0);
  EXPECT_FALSE(pg.uses_mpi());
  EXPECT_TRUE(pg.is_main());
  EXPECT_EQ(pg.communicator(kCPU).backend(), "local");
  EXPECT_EQ(pg.default_device(), cuda::is_available() ? Device("cuda:0") : kCPU);
}

TEST(DistProcessGroup, LaunchDetectionAndTimeoutFromTheEnvironment) {
  ASSERT_EQ(setenv("EMBER_DIST_MPI", "0", 1), 0);
  EXPECT_FALSE(dist::launched_by_mpi());
  ASSERT_EQ(setenv("EMBER_DIST_MPI", "1", 1), 0);
  EXPECT_TRUE(dist::launched_by_mpi());
  unsetenv("EMBER_DIST_MPI");
  ASSERT_EQ(setenv("PMIX_RANK", "0", 1), 0);
  EXPECT_TRUE(dist::launched_by_mpi());
  unsetenv("PMIX_RANK");
  EXPECT_FALSE(dist::launched_by_mpi());

  // The env:// launch: a world of several, or ember's launcher (even for a world of one).
  EXPECT_FALSE(dist::launched_by_env());
  setenv("WORLD_SIZE", "1", 1);
  EXPECT_FALSE(dist::launched_by_env()) << "torchrun's world of one is just one process";
  setenv("WORLD_SIZE", "2", 1);
  EXPECT_TRUE(dist::launched_by_env());
  unsetenv("WORLD_SIZE");
  setenv("EMBER_STORE_SERVED", "1", 1);
  EXPECT_TRUE(dist::launched_by_env());
  unsetenv("EMBER_STORE_SERVED");

  unsetenv("EMBER_DIST_TIMEOUT");
  EXPECT_EQ(dist::timeout_from_env(), 300.0);
  setenv("EMBER_DIST_TIMEOUT", "2.5", 1);
  EXPECT_EQ(dist::timeout_from_env(), 2.5);
  setenv("EMBER_DIST_TIMEOUT", "soon", 1);
  try {
    dist::timeout_from_env();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("EMBER_DIST_TIMEOUT=soon"), std::string::npos) << e.what();
  }
  unsetenv("EMBER_DIST_TIMEOUT");
}

TEST(DistCommunicator, LocalCollectivesOfOneProcess) {
  dist::ProcessGroup& pg = dist::default_group();
  Tensor t = from_vector<float>({1, 2, 3});
  pg.allreduce(t, dist::ReduceOp::average)->wait();
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  pg.broadcast(t, 0)->wait();
  Tensor out = zeros({3});
  pg.allgather(t, out)->wait();
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  Tensor rs = zeros({3});
  pg.reduce_scatter(t, rs)->wait();
  EXPECT_EQ(rs.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  pg.barrier();
  // Wrong inputs are errors that say what was expected.
  EXPECT_THROW(pg.allgather(t, zeros({4}))->wait(), dist::Error);
  EXPECT_THROW(pg.allreduce(zeros({4, 4}).t()), dist::Error);  // not contiguous
  EXPECT_THROW(pg.broadcast(t, 1), dist::Error);
}

// ---- bucket assignment (Note [Gradient buckets])
TEST(DistBuckets, ReverseOrderFirstCapThenCapPerDtype) {
  // Sizes in registration order; buckets fill from the last tensor backwards.
  std::vector<int64_t> bytes = {100, 100, 100, 100, 100, 100};
  std::vector<std::string> keys(6, "f32");
  auto b = dist::assign_buckets(bytes, keys, /*first=*/150, /*cap=*/300);
  EXPECT_EQ(b, (std::vector<std::vector<size_t>>{{5, 4}, {3, 2, 1}, {0}}));
  // A tensor larger than the cap gets a bucket of its own; dtypes never mix.
  keys = {"f32", "f64", "f32", "f64", "f32", "f32"};
  bytes = {10, 10, 1000, 10, 10, 10};
  b = dist::assign_buckets(bytes, keys, 15, 1000);
  EXPECT_EQ(b, (std::vector<std::vector<size_t>>{{5, 4}, {3, 1}, {2}, {0}}));
  EXPECT_THROW(dist::assign_buckets({1}, {"a", "b"}, 1, 1), Error);
}

TEST(DistBuckets, LeNetBucketsAndGradientViews) {
  nn::ModulePtr m = test::make_net("lenet", 1, DType::f32);
  // conv1.w conv1.b conv2.w conv2.b fc1.w fc1.b fc2.w fc2.b fc3.w fc3.b: 600 24 9600 64
  // 192000 480 40320 336 3360 40 bytes. First cap 4000 B: fc3.b fc3.w fc2.b fc2.w (43736 B
  // >= 4000 closes it); cap 100000 B: fc1.b fc1.w; the rest.
  DDP ddp(m, {.first_bucket_mb = 4000.0 / (1 << 20), .bucket_mb = 100000.0 / (1 << 20)});
  EXPECT_EQ(ddp.bucket_assignment(), (std::vector<std::vector<size_t>>{{9, 8, 7, 6}, {5, 4}, {3, 2, 1, 0}}));
  EXPECT_EQ(ddp.params()[9].first, "fc3.bias");
  // Default caps (1 MiB first): LeNet's 247 KB fit one bucket.
  DDP one(test::make_net("lenet", 1, DType::f32));
  EXPECT_EQ(one.bucket_assignment().size(), 1u);

  // Every .grad is a view into its bucket: the parameters of one bucket share storage,
  // laid out in bucket order.
  for (const auto& bucket : ddp.bucket_assignment()) {
    const Tensor& first = ddp.params()[bucket[0]].second;
    int64_t off = 0;
    for (size_t i : bucket) {
      Tensor g = ddp.params()[i].second.grad();
      ASSERT_TRUE(g.defined());
      EXPECT_EQ(g.storage(), first.grad().storage());
      EXPECT_EQ(g.offset(), off);
      off += g.numel();
    }
  }
  // Backward accumulates into the views (no new gradient tensors).
  auto d = test::make_data(8, 3, DType::f32);
  Tensor storage_before = ddp.params()[0].second.grad();
  cross_entropy(ddp(d.images), d.labels).backward();
  ddp.finish();
  EXPECT_TRUE(ddp.params()[0].second.grad().is_same(storage_before));
}

// ---- world of one == plain training
TEST(DistDDP, OneProcessTrainsExactlyLikeThePlainLoop) {
  auto d = test::make_data(96, 7, DType::f64);
  nn::ModulePtr ref = test::make_net("lenet", 11, DType::f64);
  test::train_plain(*ref, d, 32, 3);
  nn::ModulePtr m = test::make_net("lenet", 11, DType::f64);
  DDP ddp(m, {.first_bucket_mb = 0.01, .bucket_mb = 0.1});
  ASSERT_GT(ddp.bucket_assignment().size(), 2u);
  test::train_ddp(ddp, d, 32, 3);
  auto a = ref->named_parameters(), b = m->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(all_close(b[i].second, a[i].second, 0, 0)) << a[i].first;
}

TEST(DistDDP, OverlapOffAndFp16CompressionStillTrain) {
  auto d = test::make_data(64, 5, DType::f32);
  nn::ModulePtr ref = test::make_net("small", 2, DType::f32);
  test::train_plain(*ref, d, 32, 2);
  for (bool overlap : {false, true}) {
    nn::ModulePtr m = test::make_net("small", 2, DType::f32);
    DDP ddp(m, {.first_bucket_mb = 0.001, .compression = dist::GradCompression::fp16, .overlap = overlap});
    test::train_ddp(ddp, d, 32, 2);
    auto a = ref->named_parameters(), b = m->named_parameters();
    // f16 keeps ~3 significant digits of each gradient.
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(all_close(b[i].second, a[i].second, 1e-2, 1e-3)) << a[i].first;
  }
  EXPECT_EQ(dist::parse_grad_compression("fp16"), dist::GradCompression::fp16);
  EXPECT_THROW(dist::parse_grad_compression("int8"), Error);
}

// ---- overlap: bucket 0's allreduce starts inside backward, before the first layers'
// gradients exist.
TEST(DistDDP, FirstBucketStartsBeforeBackwardEnds) {
  for (bool overlap : {true, false}) {
    nn::ModulePtr m = test::make_net("lenet", 1, DType::f32);
    DDP ddp(m, {.first_bucket_mb = 4000.0 / (1 << 20), .bucket_mb = 100000.0 / (1 << 20), .overlap = overlap});
    std::vector<DDPEvent> ev;
    ddp.set_observer([&](const DDPEvent& e) { ev.push_back(e); });
    auto d = test::make_data(4, 1, DType::f32);
    Tensor loss = cross_entropy(ddp(d.images), d.labels);
    loss.backward();
    size_t backward_events = ev.size();
    ddp.finish();
    EXPECT_EQ(ev.size(), backward_events) << "backward already completed the sync";
    auto pos = [&](DDPEvent::Kind k, int64_t i) {
      return size_t(std::find_if(ev.begin(), ev.end(), [&](const DDPEvent& e) { return e.kind == k && e.index == i; }) -
                    ev.begin());
    };
    size_t start0 = pos(DDPEvent::bucket_started, 0), conv1_ready = pos(DDPEvent::grad_ready, 0);
    ASSERT_LT(start0, ev.size());
    ASSERT_LT(conv1_ready, ev.size());
    if (overlap) {
      EXPECT_LT(start0, conv1_ready) << "bucket 0 should start before conv1.weight's gradient is ready";
      EXPECT_GT(start0, pos(DDPEvent::grad_ready, 6)) << "but after its own last gradient (fc2.weight)";
    } else {
      EXPECT_GT(start0, conv1_ready) << "without overlap nothing starts before the last gradient";
    }
    // Buckets start in index order and all finish.
    std::vector<int64_t> started;
    for (const auto& e : ev)
      if (e.kind == DDPEvent::bucket_started) started.push_back(e.index);
    EXPECT_EQ(started, (std::vector<int64_t>{0, 1, 2}));
    EXPECT_LT(pos(DDPEvent::bucket_finished, 2), ev.size());
  }
}

// ---- unused parameters
TEST(DistDDP, AParameterWithoutGradientIsAnErrorNamingIt) {
  manual_seed(1);
  auto net = std::make_shared<test::SmallNet>(/*with_unused=*/true);
  DDP ddp(net);
  auto d = test::make_data(4, 1, DType::f32);
  cross_entropy(ddp(d.images), d.labels).backward();
  try {
    ddp.finish();
    ADD_FAILURE() << "expected an error";
  } catch (const dist::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'unused.weight', 'unused.bias'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("find_unused_parameters"), std::string::npos) << msg;
  }
  // Without finish(), the next forward reports it.
  cross_entropy(ddp(d.images), d.labels).backward();
  try {
    ddp(d.images);
    ADD_FAILURE() << "expected an error";
  } catch (const dist::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'unused.weight'"), std::string::npos) << e.what();
  }
}

TEST(DistDDP, DeclaredUnusedParametersAreReducedAsZeros) {
  manual_seed(1);
  auto net = std::make_shared<test::SmallNet>(/*with_unused=*/true);
  DDP ddp(net, {.find_unused_parameters = true});
  auto d = test::make_data(4, 1, DType::f32);
  for (int it = 0; it < 2; ++it) {
    net->use_unused_ = it == 1;  // unused in the first iteration, used in the second
    ddp.zero_grad();
    cross_entropy(ddp(d.images), d.labels).backward();
    ddp.finish();
    Tensor g = net->unused->weight.grad();
    ASSERT_TRUE(g.defined());
    double norm = sum(abs(g)).item();
    if (it == 0) EXPECT_EQ(norm, 0.0);
    else EXPECT_GT(norm, 0.0);
    EXPECT_GT(sum(abs(net->fc1->weight.grad())).item(), 0.0);
  }
}

// ---- gradient accumulation and zero_grad(set_to_none)
TEST(DistDDP, NoSyncAccumulatesAndSetToNoneIsRepaired) {
  auto d = test::make_data(16, 4, DType::f64);
  nn::ModulePtr ref = test::make_net("small", 3, DType::f64);
  Tensor l1 = cross_entropy((*ref)(d.images.narrow(0, 0, 8)), d.labels.narrow(0, 0, 8));
  Tensor l2 = cross_entropy((*ref)(d.images.narrow(0, 8, 8)), d.labels.narrow(0, 8, 8));
  (l1 + l2).backward();

  nn::ModulePtr m = test::make_net("small", 3, DType::f64);
  DDP ddp(m);
  std::vector<DDPEvent> ev;
  ddp.set_observer([&](const DDPEvent& e) { ev.push_back(e); });
  m->zero_grad();  // set_to_none: the views are dropped ...
  {
    auto guard = ddp.no_sync();
    cross_entropy(ddp(d.images.narrow(0, 0, 8)), d.labels.narrow(0, 0, 8)).backward();
  }
  for (const auto& e : ev) EXPECT_NE(e.kind, DDPEvent::bucket_started) << "no_sync must not communicate";
  cross_entropy(ddp(d.images.narrow(0, 8, 8)), d.labels.narrow(0, 8, 8)).backward();
  ddp.finish();
  auto a = ref->named_parameters(), b = m->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(all_close(b[i].second.grad(), a[i].second.grad(), 1e-12, 1e-14)) << a[i].first;
    // ... and restored: the gradient is its bucket's view again.
    EXPECT_EQ(b[i].second.grad().storage(), b[0].second.grad().storage()) << a[i].first;
  }
}

// ---- samplers: disjoint shards, padding, seed + epoch, and the unpadded eval shards
TEST(DistSampler, ShardsAreDisjointPaddedAndFollowSeedPlusEpoch) {
  const int64_t n = 10;
  const int world = 3;
  std::multiset<int64_t> all;
  for (int r = 0; r < world; ++r) {
    data::DistributedSampler s(n, r, world, /*shuffle=*/true, /*seed=*/5);
    EXPECT_EQ(s.size(), 4);  // ceil(10 / 3)
    auto e0 = s.indices(0);
    EXPECT_EQ(int64_t(e0.size()), s.size());
    EXPECT_EQ(e0, data::DistributedSampler(n, r, world, true, 5).indices(0)) << "a pure function of seed+epoch";
    EXPECT_NE(e0, s.indices(1)) << "a new order each epoch";
    all.insert(e0.begin(), e0.end());
  }
  // 12 slots: every sample once, plus 2 padded repeats of the epoch's head.
  EXPECT_EQ(all.size(), 12u);
  for (int64_t i = 0; i < n; ++i) EXPECT_GE(all.count(i), 1u) << i;
  auto perm = data::random_permutation(n, 5);
  EXPECT_EQ(all.count(perm[0]), 2u);
  EXPECT_EQ(all.count(perm[1]), 2u);
  // drop_last: disjoint, no repeats.
  std::set<int64_t> dl;
  for (int r = 0; r < world; ++r)
    for (int64_t i : data::DistributedSampler(n, r, world, true, 5, /*drop_last=*/true).indices(2))
      EXPECT_TRUE(dl.insert(i).second) << i;
  EXPECT_EQ(dl.size(), 9u);
}

TEST(DistSampler, EvalShardsCountEverySampleExactlyOnce) {
  for (int64_t n : {0, 1, 10, 1001}) {
    for (int world : {1, 2, 3, 8}) {
      std::vector<int64_t> seen;
      for (int r = 0; r < world; ++r) {
        dist::ShardSampler s(n, r, world);
        auto v = s.indices(0);
        EXPECT_EQ(int64_t(v.size()), s.size());
        EXPECT_LE(s.size(), (n + world - 1) / world);
        seen.insert(seen.end(), v.begin(), v.end());
      }
      std::sort(seen.begin(), seen.end());
      std::vector<int64_t> expect(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) expect[size_t(i)] = i;
      EXPECT_EQ(seen, expect) << "n=" << n << " world=" << world;
    }
  }
  EXPECT_THROW(dist::ShardSampler(5, 2, 2), Error);
  EXPECT_EQ(dist::allreduce_sum(dist::default_group(), {1.5, 2}), (std::vector<double>{1.5, 2}));
}

}  // namespace
}  // namespace ember
