// The CUDA paths of issue 10: host waits in a training step, deferred device checks,
// direct and cross-device copies, deterministic mode, cuDNN on offset views, and tensors
// freed and reused while long work is queued, per-thread cuBLAS/cuDNN handles. Every test
// skips visibly without a GPU.
#include <cstring>
#include <latch>
#include <thread>
#include <vector>

#if EMBER_WITH_CUDA
#include <cuda_runtime_api.h>

#include "kernels/cuda/cublas_check.h"
#if EMBER_WITH_CUDNN
#include "kernels/cudnn/check.h"
#endif
#include "core/cuda/stream.h"
#endif

#include "data/loader.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;
const Device kGpu("cuda:0");

using test::bytes_of;

// ---- cuBLAS and cuDNN handles (Note [Library handles] in kernels/cuda/thread_handles.h)

TEST(HandlesGpu, EachThreadHasItsOwnHandlesAndThreadsComputeAtOnce) {
  EMBER_REQUIRE_GPU();
#if EMBER_WITH_CUDA
  cudaStream_t s = cuda::current_stream(0);
  cublasHandle_t main_handle = cuda::cublas_handle(0, s);
  EXPECT_EQ(cuda::cublas_handle(0, s), main_handle);  // the same thread keeps its handle
  manual_seed(3);
  Tensor a = randn({96, 80}), b = randn({80, 72});
  Tensor want = a.matmul(b);
  Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  constexpr int kThreads = 4;
  std::vector<cublasHandle_t> seen(kThreads);
  std::vector<Tensor> got(kThreads), got_conv(kThreads);
  Tensor x = randn({2, 3, 9, 9}), w = randn({4, 3, 3, 3});
  Tensor want_conv = conv2d(x, w, Tensor(), {1, 1}, {1, 1}, {1, 1}, 1);
  Tensor gx = x.to(kGpu), gw = w.to(kGpu);
#if EMBER_WITH_CUDNN
  cudnnHandle_t main_dnn = cudnn::handle(0);
  EXPECT_EQ(cudnn::handle(0), main_dnn);
  std::vector<cudnnHandle_t> seen_dnn(kThreads);
#endif
  std::vector<std::thread> threads;
  std::latch all_made(kThreads);  // no thread ends (freeing its handle) before all have one
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      cuda::DeviceGuard g(0);
      seen[size_t(t)] = cuda::cublas_handle(0, cuda::current_stream(0));
#if EMBER_WITH_CUDNN
      seen_dnn[size_t(t)] = cudnn::handle(0);
#endif
      Tensor c, y;
      for (int k = 0; k < 20; ++k) {
        c = ga.matmul(gb);
        y = conv2d(gx, gw, Tensor(), {1, 1}, {1, 1}, {1, 1}, 1);
      }
      got[size_t(t)] = c.cpu();
      got_conv[size_t(t)] = y.cpu();
      all_made.arrive_and_wait();
    });  // ends: its handle is destroyed while the runtime is alive
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_NE(seen[size_t(t)], main_handle) << t;
    for (int u = 0; u < t; ++u) EXPECT_NE(seen[size_t(t)], seen[size_t(u)]) << t << " " << u;
    EXPECT_TRUE(all_close(got[size_t(t)], want, 1e-4, 1e-4)) << t;
    EXPECT_TRUE(all_close(got_conv[size_t(t)], want_conv, 1e-4, 1e-4)) << t;
#if EMBER_WITH_CUDNN
    EXPECT_NE(seen_dnn[size_t(t)], main_dnn) << t;
    for (int u = 0; u < t; ++u) EXPECT_NE(seen_dnn[size_t(t)], seen_dnn[size_t(u)]) << t << " " << u;
#endif
  }
  // The main thread's handle still works after the others were destroyed.
  EXPECT_TRUE(all_close(ga.matmul(gb).cpu(), want, 1e-4, 1e-4));
#endif
}

// ---- host waits

TEST(HostSyncGpu, LeNetTrainingStepSyncsAtMostOnce) {
  EMBER_REQUIRE_GPU();
  manual_seed(1);
  nn::LeNet model(10);
  model.to(kGpu);
  optim::SGD opt(model.parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4});
  Tensor x = randn({64, 1, 28, 28}, {.device = kGpu});
  Tensor y = randint(0, 10, {64}, {.dtype = DType::i64, .device = kGpu});
  auto step = [&] {
    Tensor loss = cross_entropy(model.forward(x), y);
    model.zero_grad();
    loss.backward();
    opt.step();
    return loss;
  };
  step();  // the first step chooses cuDNN algorithms and fills the allocator's cache
  cuda::synchronize();
  int64_t before = cuda::sync_count();
  Tensor loss = step();
  EXPECT_EQ(cuda::sync_count() - before, 0) << "the step itself must not wait for the GPU";
  (void)loss.item();
  EXPECT_LE(cuda::sync_count() - before, 1) << "one wait: the item() that reads the loss";
}

TEST(HostSyncGpu, DeviceChecksDoNotWaitAndReportAtTheNextSync) {
  EMBER_REQUIRE_GPU();
  Tensor x = randn({8, 5}, {.device = kGpu});
  Tensor bad = from_vector<int64_t>({0, 1, 2, 3, 4, 9, 0, 1}, {8}, {.dtype = DType::i64}).to(kGpu);
  cuda::synchronize();
  int64_t before = cuda::sync_count();
  Tensor loss = cross_entropy(x, bad);
  Tensor rows = index_select(x, 0, bad);
  EXPECT_EQ(cuda::sync_count(), before) << "a range check must not make the host wait";
  EXPECT_ERROR(loss.item(), "label 9 at position 5 is out of range for 5 classes");
  // Reported once: the index check behind it (also done by now) came with it.
  EXPECT_NO_THROW(cuda::synchronize());
  // The optimizer step raises a completed check without waiting.
  Tensor p = zeros({8}, {.device = kGpu}).requires_grad_();
  optim::SGD opt({p}, {.lr = 0.1});
  p.set_grad(ones({8}, {.device = kGpu}));
  Tensor again = index_select(x, 0, bad);
#if EMBER_WITH_CUDA
  cuda::stream_synchronize(cuda::current_stream(0));  // lands the result, reports nothing
#endif
  EXPECT_ERROR(opt.step(), "index 9 at position 5 is out of range for dim 0 of size 8");
}

// ---- copies

TEST(CopyGpu, HostToDeviceFromContiguousPageableMemoryDoesNotWait) {
  EMBER_REQUIRE_GPU();
  Tensor h = randn({1 << 20});
  Tensor ref = h.clone();
  Tensor d = empty({1 << 20}, {.device = kGpu});
  cuda::synchronize();
  int64_t before = cuda::sync_count();
  d.copy_(h);
  EXPECT_EQ(cuda::sync_count(), before);
  h.fill_(0.0);  // the source is reusable at once: cudaMemcpyAsync staged it
  EXPECT_EQ(bytes_of(d), bytes_of(ref));
}

TEST(CopyGpu, PinnedAndStridedSourcesAndDestinationsMatchCpu) {
  EMBER_REQUIRE_GPU();
#if EMBER_WITH_CUDA
  const int64_t n = 4099;
  void* pinned = nullptr;
  ASSERT_EQ(cudaHostAlloc(&pinned, size_t(n) * sizeof(float), cudaHostAllocDefault), cudaSuccess);
  Tensor hp = from_blob(pinned, {n}, {.dtype = DType::f32});
  Tensor ref = randn({n});
  hp.copy_(ref);
  Tensor d = hp.to(kGpu);  // direct from pinned memory (waits: the caller owns the buffer)
  hp.fill_(0.0);
  EXPECT_EQ(bytes_of(d), bytes_of(ref));
  Tensor back = from_blob(pinned, {n}, {.dtype = DType::f32});
  back.copy_(d);  // device to pinned host, no staging
  EXPECT_EQ(bytes_of(back), bytes_of(ref));
  hp = Tensor();
  back = Tensor();
  cudaFreeHost(pinned);
#endif
  // Strided source, converting dtype, strided destination: the staged paths.
  Tensor m = randn({33, 17});
  EXPECT_EQ(bytes_of(m.t().to(kGpu)), bytes_of(m.t().contiguous()));
  EXPECT_EQ(bytes_of(m.to(kGpu, DType::f16)), bytes_of(m.to(DType::f16)));
  Tensor host = zeros({17, 33});
  host.t().copy_(m.to(kGpu));
  EXPECT_EQ(bytes_of(host.t()), bytes_of(m));
}

TEST(CopyGpu, CrossDeviceCopyIsOrderedWithBothStreams) {
  EMBER_REQUIRE_GPU();
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs (this machine has one)";
  const Device g1("cuda:1");
  for (int rep = 0; rep < 20; ++rep) {
    // Written by a kernel just before the copy, consumed on the other device at once, and
    // the source dropped while the copy may still read it.
    Tensor src = full({1 << 22}, double(rep), {.device = kGpu}) + 1.0;
    Tensor dst = src.to(g1);
    src = Tensor();
    Tensor reuse = full({1 << 22}, -5.0, {.device = kGpu});  // may take src's block
    // min and max are exact (a float sum of 4M values would round).
    EXPECT_EQ(min(dst).item<double>(), double(rep + 1));
    EXPECT_EQ(max(dst).item<double>(), double(rep + 1));
    Tensor strided = empty({1 << 11, 1 << 11}, {.device = g1}).t();
    strided.copy_(reuse.reshape({1 << 11, 1 << 11}));
    EXPECT_EQ(min(strided).item<double>(), -5.0);
    EXPECT_EQ(max(strided).item<double>(), -5.0);
  }
}

// ---- determinism

TEST(DeterministicGpu, ScatterAddEqualsCpuBitForBitAndRepeats) {
  EMBER_REQUIRE_GPU();
  set_deterministic(true);
  manual_seed(5);
  for (DType dt : {DType::f32, DType::f16, DType::f64}) {
    // index_select backward: 50k rows from 13, so every row sums thousands of terms.
    Tensor idx = randint(0, 13, {50000});
    Tensor v = randn({50000, 7}, {.dtype = dt});
    auto grad_on = [&](Device d) {
      Tensor w = zeros({13, 7}, {.dtype = dt, .device = d}).requires_grad_();
      return autograd::grad({index_select(w, 0, idx.to(d))}, {w}, {v.to(d)})[0];
    };
    Tensor cpu = grad_on(kCPU), a = grad_on(kGpu), b = grad_on(kGpu);
    EXPECT_EQ(bytes_of(a), bytes_of(cpu)) << dt;
    EXPECT_EQ(bytes_of(a), bytes_of(b)) << dt;
    // gather backward along dim 1, index smaller than the input in dim 0.
    Tensor gi = randint(0, 6, {3, 40});
    Tensor gv = randn({3, 40}, {.dtype = dt});
    auto ggrad_on = [&](Device d) {
      Tensor w = zeros({5, 6}, {.dtype = dt, .device = d}).requires_grad_();
      return autograd::grad({gather(w, 1, gi.to(d))}, {w}, {gv.to(d)})[0];
    };
    EXPECT_EQ(bytes_of(ggrad_on(kGpu)), bytes_of(ggrad_on(kCPU))) << dt;
  }
  set_deterministic(false);
}

TEST(DeterministicGpu, ConvAlgorithmsChosenWithoutTimingRepeat) {
  EMBER_REQUIRE_GPU();
  set_deterministic(true);
  Tensor x = randn({8, 16, 20, 20}, {.device = kGpu}).requires_grad_();
  Tensor w = randn({32, 16, 3, 3}, {.device = kGpu}).requires_grad_();
  Tensor gy = randn({8, 32, 20, 20}, {.device = kGpu});
  auto run = [&] { return autograd::grad({conv2d(x, w, Tensor(), {1, 1}, {1, 1})}, {x, w}, {gy}); };
  TensorList a = run(), b = run();
  EXPECT_EQ(bytes_of(a[0]), bytes_of(b[0]));
  EXPECT_EQ(bytes_of(a[1]), bytes_of(b[1]));
  set_deterministic(false);
}

// ---- cuDNN on views that start off the allocator's alignment

TEST(CudnnGpu, ConvOnOffsetViewsMatchesCpu) {
  EMBER_REQUIRE_GPU();
  for (bool det : {false, true}) {
    set_deterministic(det);
    for (int64_t off : {0, 1, 2, 3, 4, 7}) {
      const Shape xs{2, 3, 11, 9}, ws{4, 3, 3, 3};
      Tensor xb = randn({shape_numel(xs) + off}, {.dtype = DType::f32});
      Tensor wb = randn({shape_numel(ws) + off}, {.dtype = DType::f32});
      Tensor xc = xb.narrow(0, off, shape_numel(xs)).reshape(xs);
      Tensor wc = wb.narrow(0, off, shape_numel(ws)).reshape(ws);
      Tensor xg = xb.to(kGpu).narrow(0, off, shape_numel(xs)).reshape(xs);
      Tensor wg = wb.to(kGpu).narrow(0, off, shape_numel(ws)).reshape(ws);
      EXPECT_TRUE(all_close(conv2d(xg, wg, Tensor(), {1, 1}, {1, 1}).cpu(),
                            conv2d(xc, wc, Tensor(), {1, 1}, {1, 1}), 1e-4, 1e-4))
          << "offset " << off << " deterministic " << det;
    }
  }
  set_deterministic(false);
}

TEST(CudnnGpu, HalfPrecisionConvWithBiasMatchesCpu) {
  EMBER_REQUIRE_GPU();
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor x = randn({4, 8, 12, 12}), w = randn({16, 8, 3, 3}) * 0.2, b = randn({16});
    Tensor ref = conv2d(x, w, b, {1, 1}, {1, 1});
    Tensor got = conv2d(x.to(kGpu, dt), w.to(kGpu, dt), b.to(kGpu, dt), {1, 1}, {1, 1});
    EXPECT_TRUE(all_close(got.cpu().to(DType::f32), ref, 5e-2, 5e-2)) << dt;
  }
}

// ---- cross-stream and reuse stress

TEST(StreamStressGpu, BuffersFreedWhileAGemmRunsAreReusedSafely) {
  EMBER_REQUIRE_GPU();
  manual_seed(11);
  Tensor a_cpu = randn({2048, 2048}), b_cpu = randn({2048, 2048});
  Tensor ref = matmul(a_cpu.narrow(0, 0, 64), b_cpu);
  for (int rep = 0; rep < 5; ++rep) {
    Tensor a = a_cpu.to(kGpu), b = b_cpu.to(kGpu);
    Tensor c = matmul(a, b);  // long: queued, the host runs ahead
    a = Tensor();
    b = Tensor();
    // Their blocks go back to the cache at once and are refilled by later kernels, which
    // the stream orders after the GEMM.
    Tensor junk1 = full({2048, 2048}, 1e30, {.device = kGpu});
    Tensor junk2 = full({2048, 2048}, -1e30, {.device = kGpu});
    EXPECT_TRUE(all_close(c.narrow(0, 0, 64).cpu(), ref, 1e-3, 1e-3)) << "rep " << rep;
  }
}

// Sample i: a 32x32 image of (i % 97) + pixel / 1024, labelled i.
class RampImages : public data::ImageDataset {
 public:
  int64_t size() const override { return 1000; }
  Shape image_shape() const override { return {1, 32, 32}; }
  void fill_batch(std::span<const int64_t> idx, float* images, int64_t* labels) const override {
    for (size_t b = 0; b < idx.size(); ++b) {
      for (int j = 0; j < 1024; ++j) images[b * 1024 + size_t(j)] = float(idx[b] % 97) + float(j) / 1024.0f;
      labels[b] = idx[b];
    }
  }
};

TEST(StreamStressGpu, PinnedLoaderBatchesSurviveASlowConsumer) {
  EMBER_REQUIRE_GPU();
  auto ds = std::make_shared<RampImages>();
  Tensor a = randn({2048, 2048}, {.device = kGpu});
  for (int workers : {0, 2}) {
    data::DataLoader cpu_loader(ds, {.batch_size = 50, .shuffle = true, .seed = 8});
    data::DataLoader gpu_loader(ds, {.batch_size = 50, .shuffle = true, .seed = 8, .num_workers = workers,
                                     .device = kGpu, .pin_memory = true});
    std::vector<data::Batch> want, got;
    // A GEMM before each batch keeps its copy queued while the host prepares the next ones
    // into pinned buffers: a buffer reused before its copy ran would show here. Nothing
    // is read back until the epoch is over.
    for (auto c = cpu_loader.next(), g = gpu_loader.next(); c || g; c = cpu_loader.next(), g = gpu_loader.next()) {
      ASSERT_TRUE(c && g);
      Tensor slow = matmul(a, a);
      want.push_back(*c);
      got.push_back(*g);
    }
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(bytes_of(got[i].images()), bytes_of(want[i].images())) << "batch " << i << " workers " << workers;
      EXPECT_EQ(got[i].labels().to_vector<int64_t>(), want[i].labels().to_vector<int64_t>()) << "batch " << i;
    }
  }
}

// NCCL allreduce with inputs dropped by the caller: DistGpu.DroppedTensorsStayValidUntilTheCollectiveRan.

}  // namespace
}  // namespace ember
