// The CUDA side of data parallel in one process: NCCL collectives on cuda:0 (a world of
// one still runs real NCCL calls on the communication stream), their ordering after the
// compute stream, and DDP on the GPU against the CPU (twin) run. Skips without a GPU.
#include <gtest/gtest.h>

#include "dist_common.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

TEST(DistGpu, CollectivesOnTheGpuCommunicator) {
  EMBER_REQUIRE_GPU();
  dist::ProcessGroup& pg = dist::default_group();
  Device g("cuda:0");
  EXPECT_EQ(pg.communicator(g).backend(), EMBER_WITH_NCCL ? "nccl" : "local");
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i64}) {
    // Written by a kernel on the compute stream just before: the collective must wait for it.
    Tensor t = full({1 << 20}, 3.0, {.dtype = dt, .device = g});
    t.mul_(2.0);
    pg.allreduce(t)->wait();
    Tensor u = t + 1.0;  // queued after wait(): sees the result
    EXPECT_EQ(u.to_vector<double>()[12345], 7.0) << dtype_name(dt);
  }
  Tensor b = arange(0, 10, 1).to(g);
  pg.broadcast(b, 0)->wait();
  EXPECT_EQ(b.to_vector<float>()[9], 9.0f);
  Tensor out = zeros({10}, {.device = g});
  pg.allgather(b, out)->wait();
  EXPECT_TRUE(all_close(out, b, 0, 0));
  Tensor rs = zeros({10}, {.device = g});
  pg.reduce_scatter(b, rs, dist::ReduceOp::average)->wait();
  EXPECT_TRUE(all_close(rs, b, 0, 0));
  pg.communicator(g).barrier()->wait();
  EXPECT_THROW(pg.allreduce(zeros({3}, {.device = g}).expand({2, 3})), dist::Error);
}

TEST(DistGpu, DroppedTensorsStayValidUntilTheCollectiveRan) {
  EMBER_REQUIRE_GPU();
  dist::ProcessGroup& pg = dist::default_group();
  Device g("cuda:0");
  // The Work keeps its tensor; new allocations on the compute stream are ordered after it.
  for (int i = 0; i < 20; ++i) {
    dist::WorkPtr w;
    {
      Tensor t = full({1 << 18}, double(i), {.device = g});
      w = pg.allreduce(t);
    }
    Tensor fresh = full({1 << 18}, -1.0, {.device = g});
    w->wait();
    EXPECT_EQ(fresh.to_vector<float>()[100], -1.0f);
  }
}

TEST(DistGpu, DdpOnTheGpuMatchesTheCpuRun) {
  EMBER_REQUIRE_GPU();
  Device g("cuda:0");
  auto dc = test::make_data(96, 7, DType::f32);
  auto dg = test::make_data(96, 7, DType::f32, g);
  nn::ModulePtr ref = test::make_net("lenet", 11, DType::f32);
  test::train_plain(*ref, dc, 32, 3);
  for (auto comp : {dist::GradCompression::none, dist::GradCompression::fp16}) {
    nn::ModulePtr m = test::make_net("lenet", 11, DType::f32, g);
    dist::DDP ddp(m, {.first_bucket_mb = 0.01, .bucket_mb = 0.1, .compression = comp});
    ASSERT_GT(ddp.bucket_assignment().size(), 2u);
    test::train_ddp(ddp, dg, 32, 3);
    double rtol = comp == dist::GradCompression::none ? 1e-4 : 2e-2;
    auto a = ref->named_parameters(), b = m->named_parameters();
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_TRUE(all_close(b[i].second.cpu(), a[i].second, rtol, rtol / 10)) << a[i].first;
  }
}

}  // namespace
}  // namespace ember
