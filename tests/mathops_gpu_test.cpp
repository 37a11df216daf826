// CUDA vs CPU parity for matmul/linear, softmax, losses, dropout and var/std/logsumexp:
// forward outputs and input gradients must agree. Skips without a GPU.
#include <functional>
#include <string>

#include "kernels/matmul.h"
#if EMBER_WITH_CUDA
#include "core/cuda/stream.h"
#endif
#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

const Device kGpu(DeviceType::cuda, 0);

struct ParityCase {
  std::string name;
  std::function<TensorList()> make_inputs;  // on the CPU
  std::function<Tensor(const TensorList&)> fn;
  double rtol = 1e-5, atol = 1e-5;
};

Tensor rn(const Shape& s, DType dt = DType::f32) { return randn(s, {.dtype = dt}); }
Tensor tview(const Tensor& t) {
  Shape sz = t.shape(), st = t.strides();
  std::swap(sz[sz.size() - 1], sz[sz.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return make_view(t, sz, st, t.offset());
}
Tensor labels(const std::vector<int64_t>& v, const Shape& s) {
  return from_vector(v, s, {.dtype = DType::i64});
}
// n labels in [0, C) with every 7th ignored.
Tensor some_labels(int64_t n, int64_t C, const Shape& s) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(i % 7 == 3 ? -100 : (i * 5 + 1) % C);
  return labels(v, s);
}

void run_parity(const ParityCase& c) {
  SCOPED_TRACE(c.name);
  manual_seed(1234);
  TensorList cpu_in = c.make_inputs();
  TensorList gpu_in, cpu_need, gpu_need;
  for (Tensor& t : cpu_in) {
    // Inputs keep their layout on the GPU (a transposed view stays one).
    Tensor g = t.to(kGpu);
    if (!t.is_contiguous()) {
      // Copy the whole storage and view it with the same geometry.
      Tensor all = make_view(t, {t.storage()->nbytes() / t.element_size()}, {1}, 0);
      g = make_view(all.to(kGpu), t.shape(), t.strides(), t.offset());
    }
    if (is_floating(t.dtype())) {
      t.requires_grad_();
      g.requires_grad_();
      cpu_need.push_back(t);
      gpu_need.push_back(g);
    }
    gpu_in.push_back(g);
  }
  Tensor out_c = c.fn(cpu_in), out_g = c.fn(gpu_in);
  ASSERT_TRUE(out_g.is_cuda());
  EXPECT_TRUE(all_close(out_g.cpu().to(DType::f64), out_c.to(DType::f64), c.rtol, c.atol)) << "forward";
  Tensor grad = randn(out_c.shape(), {.dtype = out_c.dtype()});
  TensorList gc = autograd::grad({out_c}, cpu_need, {grad}, false, true);
  TensorList gg = autograd::grad({out_g}, gpu_need, {grad.to(kGpu)}, false, true);
  ASSERT_EQ(gc.size(), gg.size());
  for (size_t i = 0; i < gc.size(); ++i) {
    ASSERT_EQ(gc[i].defined(), gg[i].defined()) << "grad " << i;
    if (!gc[i].defined()) continue;
    EXPECT_TRUE(gg[i].is_cuda());
    EXPECT_TRUE(all_close(gg[i].cpu().to(DType::f64), gc[i].to(DType::f64), c.rtol, c.atol))
        << "grad of input " << i;
  }
}

std::vector<ParityCase> cases() {
  std::vector<ParityCase> v;
  auto mm2 = [](const TensorList& in) { return matmul(in[0], in[1]); };
  v.push_back({"matmul 2-D f32", [] { return TensorList{rn({64, 48}), rn({48, 32})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul transposed views", [] { return TensorList{tview(rn({48, 64})), tview(rn({32, 48}))}; },
               mm2, 1e-4, 1e-4});
  v.push_back({"matmul strided copy", [] {
                 Tensor a = rn({16, 24});
                 return TensorList{make_view(a, {16, 12}, {24, 2}, 0), rn({12, 5})};
               }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul broadcast batch", [] { return TensorList{rn({2, 1, 8, 5}), rn({3, 5, 4})}; }, mm2,
               1e-4, 1e-4});
  v.push_back({"matmul shared B (fold)", [] { return TensorList{rn({4, 8, 16}), rn({16, 8})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul shared A", [] { return TensorList{rn({8, 16}), rn({4, 16, 8})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul dot", [] { return TensorList{rn({40}), rn({40})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul vec @ batch", [] { return TensorList{rn({6}), rn({3, 6, 5})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul batch @ vec", [] { return TensorList{rn({3, 5, 6}), rn({6})}; }, mm2, 1e-4, 1e-4});
  v.push_back({"matmul f64", [] { return TensorList{rn({33, 17}, DType::f64), rn({17, 9}, DType::f64)}; }, mm2,
               1e-12, 1e-12});
  v.push_back({"matmul f16", [] { return TensorList{rn({32, 24}, DType::f16), rn({24, 16}, DType::f16)}; }, mm2,
               1e-2, 3e-2});
  v.push_back({"matmul bf16", [] { return TensorList{rn({32, 24}, DType::bf16), rn({24, 16}, DType::bf16)}; },
               mm2, 2e-2, 2e-1});
  v.push_back({"bmm", [] { return TensorList{rn({5, 7, 9}), rn({5, 9, 3})}; },
               [](const TensorList& in) { return bmm(in[0], in[1]); }, 1e-4, 1e-4});
  v.push_back({"linear 3-D with bias", [] { return TensorList{rn({2, 6, 10}), rn({7, 10}), rn({7})}; },
               [](const TensorList& in) { return linear(in[0], in[1], in[2]); }, 1e-4, 1e-4});
  v.push_back({"linear no bias", [] { return TensorList{rn({6, 10}), rn({7, 10})}; },
               [](const TensorList& in) { return linear(in[0], in[1]); }, 1e-4, 1e-4});
  v.push_back({"linear bf16", [] { return TensorList{rn({6, 10}, DType::bf16), rn({7, 10}, DType::bf16), rn({7}, DType::bf16)}; },
               [](const TensorList& in) { return linear(in[0], in[1], in[2]); }, 2e-2, 2e-1});

  // softmax: warp per row (C <= 1024), block per row, and the strided (inner > 1) kernel.
  for (bool log : {false, true}) {
    auto sm = [log](int64_t dim) {
      return [log, dim](const TensorList& in) { return log ? log_softmax(in[0], dim) : softmax(in[0], dim); };
    };
    std::string n = log ? "log_softmax" : "softmax";
    v.push_back({n + " rows warp", [] { return TensorList{rn({37, 100})}; }, sm(1), 1e-5, 1e-6});
    v.push_back({n + " rows block", [] { return TensorList{rn({5, 3000})}; }, sm(-1), 1e-5, 1e-6});
    v.push_back({n + " inner stride", [] { return TensorList{rn({3, 10, 7})}; }, sm(1), 1e-5, 1e-6});
    v.push_back({n + " dim 0", [] { return TensorList{rn({10, 33})}; }, sm(0), 1e-5, 1e-6});
    v.push_back({n + " f64", [] { return TensorList{rn({9, 50}, DType::f64)}; }, sm(1), 1e-12, 1e-12});
    v.push_back({n + " f16", [] { return TensorList{rn({9, 50}, DType::f16)}; }, sm(1), 1e-2, 1e-2});
    v.push_back({n + " bf16", [] { return TensorList{rn({9, 50}, DType::bf16)}; }, sm(1), 2e-2, 5e-2});
  }

  // losses
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    std::string r = red == Reduction::mean ? "mean" : red == Reduction::sum ? "sum" : "none";
    v.push_back({"cross_entropy " + r, [] { return TensorList{rn({40, 17}), some_labels(40, 17, {40})}; },
                 [red](const TensorList& in) { return cross_entropy(in[0], in[1], red, 0.1); }, 1e-5, 1e-6});
    v.push_back({"nll_loss " + r, [] { return TensorList{rn({40, 17}), some_labels(40, 17, {40})}; },
                 [red](const TensorList& in) { return nll_loss(in[0], in[1], red); }, 1e-5, 1e-6});
    v.push_back({"mse_loss " + r, [] { return TensorList{rn({8, 9}), rn({8, 9})}; },
                 [red](const TensorList& in) { return mse_loss(in[0], in[1], red); }, 1e-5, 1e-6});
  }
  v.push_back({"cross_entropy large C (block)", [] { return TensorList{rn({6, 5000}), some_labels(6, 5000, {6})}; },
               [](const TensorList& in) { return cross_entropy(in[0], in[1]); }, 1e-5, 1e-6});
  v.push_back({"cross_entropy spatial", [] { return TensorList{rn({3, 5, 4, 2}), some_labels(24, 5, {3, 4, 2})}; },
               [](const TensorList& in) { return cross_entropy(in[0], in[1], Reduction::mean, 0.2); }, 1e-5, 1e-6});
  v.push_back({"cross_entropy f64", [] { return TensorList{rn({20, 6}, DType::f64), some_labels(20, 6, {20})}; },
               [](const TensorList& in) { return cross_entropy(in[0], in[1]); }, 1e-12, 1e-12});
  v.push_back({"cross_entropy f16", [] { return TensorList{rn({20, 6}, DType::f16), some_labels(20, 6, {20})}; },
               [](const TensorList& in) { return cross_entropy(in[0], in[1], Reduction::none); }, 1e-2, 1e-2});
  v.push_back({"cross_entropy bf16", [] { return TensorList{rn({20, 6}, DType::bf16), some_labels(20, 6, {20})}; },
               [](const TensorList& in) { return cross_entropy(in[0], in[1]); }, 2e-2, 2e-2});
  v.push_back({"nll_loss spatial", [] { return TensorList{rn({3, 5, 4}), some_labels(12, 5, {3, 4})}; },
               [](const TensorList& in) { return nll_loss(in[0], in[1]); }, 1e-5, 1e-6});

  // dropout: the same (seed, offset) gives the same mask on both devices.
  v.push_back({"dropout f32", [] { return TensorList{rn({1001})}; },
               [](const TensorList& in) { manual_seed(42); return dropout(in[0], 0.3, true); }, 1e-6, 1e-6});
  v.push_back({"dropout bf16 2-D", [] { return TensorList{rn({33, 17}, DType::bf16)}; },
               [](const TensorList& in) { manual_seed(43); return dropout(in[0], 0.5, true); }, 1e-2, 1e-2});

  v.push_back({"var", [] { return TensorList{rn({6, 7})}; },
               [](const TensorList& in) { return var(in[0], {1}); }, 1e-5, 1e-6});
  v.push_back({"std", [] { return TensorList{rn({6, 7})}; },
               [](const TensorList& in) { return std(in[0], {0}, 0, true); }, 1e-5, 1e-6});
  v.push_back({"logsumexp", [] { return TensorList{rn({6, 7})}; },
               [](const TensorList& in) { return logsumexp(in[0], {1}); }, 1e-5, 1e-6});
  return v;
}

TEST(MathopsGpu, ParityTable) {
  EMBER_REQUIRE_GPU();
  for (const ParityCase& c : cases()) run_parity(c);
}

TEST(MathopsGpu, Tf32Switch) {
  EMBER_REQUIRE_GPU();
  manual_seed(5);
  Tensor a = rn({256, 256}), b = rn({256, 256});
  Tensor ref = matmul(a.to(DType::f64), b.to(DType::f64));
  ASSERT_FALSE(cuda::allow_tf32());  // off by default
  Tensor exact = matmul(a.to(kGpu), b.to(kGpu)).cpu().to(DType::f64);
  EXPECT_TRUE(all_close(exact, ref, 1e-4, 1e-4));
  cuda::set_allow_tf32(true);
  Tensor fast = matmul(a.to(kGpu), b.to(kGpu)).cpu().to(DType::f64);
  cuda::set_allow_tf32(false);
  EXPECT_TRUE(all_close(fast, ref, 2e-2, 2e-1));  // 10-bit mantissa inputs
}

TEST(MathopsGpu, GemmEntryPointMatchesCpuTwin) {
  EMBER_REQUIRE_GPU();
#if EMBER_WITH_CUDA
  // C = 0.5 * A^T @ B^T + 2 * C over 3 batch entries, with padded leading dims.
  GemmParams p;
  p.trans_a = true;
  p.trans_b = true;
  p.m = 5;
  p.n = 4;
  p.k = 6;
  p.lda = 7;   // A stored (k, m) with ld 7
  p.ldb = 8;   // B stored (n, k) with ld 8
  p.ldc = 6;
  p.stride_a = 6 * 7;
  p.stride_b = 4 * 8;
  p.stride_c = 5 * 6;
  p.batch = 3;
  p.alpha = 0.5;
  p.beta = 2.0;
  for (DType dt : {DType::f32, DType::f64, DType::f16, DType::bf16}) {
    Tensor a = rn({3 * 6 * 7}, dt), b = rn({3 * 4 * 8}, dt), c = rn({3 * 5 * 6}, dt);
    Tensor cc = c.clone();
    cpu::gemm_strided_batched(dt, a.data_ptr(), b.data_ptr(), cc.data_ptr(), p);
    Tensor ag = a.to(kGpu), bg = b.to(kGpu), cg = c.to(kGpu);
    cuda::gemm_strided_batched(dt, ag.data_ptr(), bg.data_ptr(), cg.data_ptr(), p,
                               cuda::current_stream(0));
    double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-5 : dt == DType::f16 ? 1e-2 : 5e-2;
    EXPECT_TRUE(all_close(cg.cpu().to(DType::f64), cc.to(DType::f64), tol, tol)) << dtype_name(dt);
  }
  // A cuBLAS failure is an ember::Error naming cuBLAS, file and line.
  GemmParams bad = p;
  bad.lda = 1;  // below m for a transposed A
  Tensor a = rn({300}).to(kGpu), b = rn({300}).to(kGpu), c = rn({300}).to(kGpu);
  try {
    cuda::gemm_strided_batched(DType::f32, a.data_ptr(), b.data_ptr(), c.data_ptr(), bad,
                               cuda::current_stream(0));
    ADD_FAILURE() << "no error for lda = 1";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cuBLAS"), std::string::npos) << msg;
    EXPECT_NE(msg.find("matmul.cpp"), std::string::npos) << msg;
  }
#endif
}

TEST(MathopsGpu, BadLabelIsAnError) {
  EMBER_REQUIRE_GPU();
  Tensor x = rn({4, 3}).to(kGpu);
  for (int64_t bad : {3, -2}) {
    Tensor lab = labels({0, 1, bad, 2}, {4}).to(kGpu);
    // Reported at the next synchronization (Note [Deferred checks]), here the item().
    Tensor loss = cross_entropy(x, lab);
    try {
      (void)loss.item();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("label " + std::to_string(bad) + " at position 2"), std::string::npos) << msg;
      EXPECT_NE(msg.find("3 classes"), std::string::npos) << msg;
    }
    Tensor nll = nll_loss(x, lab);
    EXPECT_THROW(cuda::synchronize(), Error);
  }
  // The device stays usable afterwards.
  EXPECT_NO_THROW(cross_entropy(x, labels({0, 1, 2, 2}, {4}).to(kGpu)).cpu());
}

}  // namespace
}  // namespace ember
