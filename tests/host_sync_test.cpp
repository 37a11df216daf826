// The device-independent logic behind deferred device checks and the host-sync counter
// (core/host_sync.h), driven by fake checks so it runs on any machine.
#include "core/host_sync.h"

#include "nn/nn.h"
#include "optim/optim.h"
#include "test_util.h"

using namespace ember;

namespace {

// A check whose "device" is a flag the test flips; it records how it was used.
struct FakeCheck : detail::DeferredCheck {
  bool* landed;
  std::string error;
  int* waits;
  int* destroyed;
  FakeCheck(bool* landed, std::string error, int* waits, int* destroyed)
      : landed(landed), error(std::move(error)), waits(waits), destroyed(destroyed) {}
  ~FakeCheck() override { ++*destroyed; }
  bool ready() override { return *landed; }
  void wait() override {
    ++*waits;
    *landed = true;
  }
  std::string verdict() override { return error; }
};

struct Rig {
  bool landed[4] = {false, false, false, false};
  int waits = 0, destroyed = 0;
  std::unique_ptr<detail::DeferredCheck> make(int i, std::string error = "") {
    return std::make_unique<FakeCheck>(&landed[i], std::move(error), &waits, &destroyed);
  }
};

TEST(DeferredChecks, NothingIsReportedBeforeTheResultLands) {
  Rig r;
  detail::DeferredChecks q;
  q.push(r.make(0, "index 7 out of range"));
  EXPECT_NO_THROW(q.report());  // not landed: no wait, no error yet
  EXPECT_EQ(q.pending(), 1u);
  EXPECT_EQ(r.waits, 0);
  r.landed[0] = true;
  EXPECT_ERROR(q.report(), "index 7 out of range");
  EXPECT_EQ(q.pending(), 0u);
  EXPECT_EQ(r.destroyed, 1);
  EXPECT_NO_THROW(q.report());  // reported once
}

TEST(DeferredChecks, FirstFailureInQueueOrderWinsAndAllReadyAreConsumed) {
  Rig r;
  detail::DeferredChecks q;
  q.push(r.make(0));
  q.push(r.make(1, "first bad"));
  q.push(r.make(2, "second bad"));
  q.push(r.make(3, "not landed yet"));
  r.landed[0] = r.landed[1] = r.landed[2] = true;
  EXPECT_ERROR(q.report(), "first bad");
  EXPECT_EQ(q.pending(), 1u);  // the one still on its way stays
  EXPECT_EQ(r.destroyed, 3);
  EXPECT_EQ(r.waits, 0);
  r.landed[3] = true;
  EXPECT_ERROR(q.report(), "not landed yet");
}

TEST(DeferredChecks, ReportAllWaitsForEveryCheck) {
  Rig r;
  detail::DeferredChecks q;
  q.push(r.make(0));
  q.push(r.make(1, "late error"));
  EXPECT_ERROR(q.report_all(), "late error");
  EXPECT_EQ(r.waits, 2);
  EXPECT_EQ(q.pending(), 0u);
}

TEST(DeferredChecks, FullQueueWaitsForItsOldestOnly) {
  Rig r;
  detail::DeferredChecks q(2);
  q.push(r.make(0, "oldest failed"));
  q.push(r.make(1));
  EXPECT_EQ(r.waits, 0);
  EXPECT_ERROR(q.push(r.make(2)), "oldest failed");  // the third makes room by waiting
  EXPECT_EQ(r.waits, 1);
  EXPECT_TRUE(r.landed[0]);
  EXPECT_FALSE(r.landed[1]);
  EXPECT_EQ(q.pending(), 2u);  // the new check was queued all the same
}

TEST(HostSyncCount, CpuWorkNeverCountsAHostWait) {
  int64_t before = cuda::sync_count();
  manual_seed(3);
  nn::LeNet model(10);
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9});
  Tensor x = randn({4, 1, 28, 28});
  Tensor y = randint(0, 10, {4}, {.dtype = DType::i64});
  Tensor loss = cross_entropy(model.forward(x), y);
  model.zero_grad();
  loss.backward();
  opt.step();
  (void)loss.item();
  EXPECT_EQ(cuda::sync_count(), before);
}

}  // namespace
