// nn ops on the CPU: conv2d, pooling and batch_norm forward against naive f64 loops over the
// op-case table's geometries (strides/padding/dilation/groups/odd sizes; the table
// gradchecks them), running-stat updates against hand-computed values, and the error paths.
#include <cmath>
#include <limits>

#include "kernels/conv.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_winograd.h"
#include "op_cases.h"
#include "test_util.h"

namespace ember {
namespace {

using test::expect_gradcheck;

using test::all_close;

Tensor leaf(const Shape& shape) { return randn(shape, {.dtype = DType::f64}).requires_grad_(); }

// ---- naive references (direct loops in f64)

struct ConvArgs {
  std::array<int64_t, 2> s{1, 1}, p{0, 0}, d{1, 1};
  int64_t groups = 1;
};

Tensor conv_ref(const Tensor& xt, const Tensor& wt, const Tensor& bt, const ConvArgs& a) {
  auto x = xt.to_vector<double>(), w = wt.to_vector<double>();
  std::vector<double> b = bt.defined() ? bt.to_vector<double>() : std::vector<double>();
  int64_t N = xt.size(0), C = xt.size(1), H = xt.size(2), W = xt.size(3);
  int64_t O = wt.size(0), Cg = wt.size(1), KH = wt.size(2), KW = wt.size(3);
  int64_t OH = (H + 2 * a.p[0] - a.d[0] * (KH - 1) - 1) / a.s[0] + 1;
  int64_t OW = (W + 2 * a.p[1] - a.d[1] * (KW - 1) - 1) / a.s[1] + 1;
  int64_t Og = O / a.groups;
  std::vector<double> y(size_t(N * O * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = b.empty() ? 0.0 : b[size_t(o)];
          int64_t g = o / Og;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t i = 0; i < KH; ++i)
              for (int64_t j = 0; j < KW; ++j) {
                int64_t ih = oh * a.s[0] - a.p[0] + i * a.d[0], iw = ow * a.s[1] - a.p[1] + j * a.d[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                int64_t c = g * Cg + ci;
                acc += x[size_t(((n * C + c) * H + ih) * W + iw)] * w[size_t(((o * Cg + ci) * KH + i) * KW + j)];
              }
          y[size_t(((n * O + o) * OH + oh) * OW + ow)] = acc;
        }
  return from_vector(y, {N, O, OH, OW}, {.dtype = DType::f64});
}

enum class RefPool { max, avg, avg_nopad };
Tensor pool_ref(const Tensor& xt, RefPool kind, std::array<int64_t, 2> k, std::array<int64_t, 2> s,
                std::array<int64_t, 2> p) {
  if (s[0] == 0 && s[1] == 0) s = k;  // the default stride
  auto x = xt.to_vector<double>();
  int64_t P = xt.size(0) * xt.size(1), H = xt.size(2), W = xt.size(3);
  int64_t OH = (H + 2 * p[0] - k[0]) / s[0] + 1, OW = (W + 2 * p[1] - k[1]) / s[1] + 1;
  std::vector<double> y(size_t(P * OH * OW));
  for (int64_t q = 0; q < P; ++q)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        double best = -INFINITY, sum = 0;
        int64_t inside = 0, padded = 0;
        for (int64_t i = 0; i < k[0]; ++i)
          for (int64_t j = 0; j < k[1]; ++j) {
            int64_t ih = oh * s[0] - p[0] + i, iw = ow * s[1] - p[1] + j;
            if (ih < H + p[0] && iw < W + p[1]) ++padded;  // window clipped at the far padding
            if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
            double v = x[size_t((q * H + ih) * W + iw)];
            best = std::max(best, v);
            sum += v;
            ++inside;
          }
        double out = kind == RefPool::max ? best : sum / double(kind == RefPool::avg ? padded : inside);
        y[size_t((q * OH + oh) * OW + ow)] = out;
      }
  return from_vector(y, {xt.size(0), xt.size(1), OH, OW}, {.dtype = DType::f64});
}

Tensor adaptive_ref(const Tensor& xt, int64_t OH, int64_t OW) {
  auto x = xt.to_vector<double>();
  int64_t P = xt.size(0) * xt.size(1), H = xt.size(2), W = xt.size(3);
  std::vector<double> y(size_t(P * OH * OW));
  for (int64_t q = 0; q < P; ++q)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = int64_t(std::floor(double(oh * H) / double(OH)));
        int64_t h1 = int64_t(std::ceil(double((oh + 1) * H) / double(OH)));
        int64_t w0 = int64_t(std::floor(double(ow * W) / double(OW)));
        int64_t w1 = int64_t(std::ceil(double((ow + 1) * W) / double(OW)));
        double sum = 0;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) sum += x[size_t((q * H + i) * W + j)];
        y[size_t((q * OH + oh) * OW + ow)] = sum / double((h1 - h0) * (w1 - w0));
      }
  return from_vector(y, {xt.size(0), xt.size(1), OH, OW}, {.dtype = DType::f64});
}

/// Batch norm with given per-channel mean/var (biased), f64 loops.
Tensor bn_ref(const Tensor& xt, const std::vector<double>& mean, const std::vector<double>& var,
              const Tensor& wt, const Tensor& bt, double eps) {
  auto x = xt.to_vector<double>();
  int64_t N = xt.size(0), C = xt.size(1), S = xt.numel() / (N * C);
  std::vector<double> w = wt.defined() ? wt.to_vector<double>() : std::vector<double>(size_t(C), 1.0);
  std::vector<double> b = bt.defined() ? bt.to_vector<double>() : std::vector<double>(size_t(C), 0.0);
  std::vector<double> y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        size_t i = size_t((n * C + c) * S + s);
        y[i] = (x[i] - mean[size_t(c)]) / std::sqrt(var[size_t(c)] + eps) * w[size_t(c)] + b[size_t(c)];
      }
  return from_vector(y, xt.shape(), {.dtype = DType::f64});
}

/// Per-channel batch mean and biased variance of (N, C, ...).
void channel_stats(const Tensor& xt, std::vector<double>& mean, std::vector<double>& var) {
  auto x = xt.to_vector<double>();
  int64_t N = xt.size(0), C = xt.size(1), S = xt.numel() / (N * C);
  mean.assign(size_t(C), 0.0);
  var.assign(size_t(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < S; ++k) s += x[size_t((n * C + c) * S + k)];
    double mu = s / double(N * S), q = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < S; ++k) q += std::pow(x[size_t((n * C + c) * S + k)] - mu, 2);
    mean[size_t(c)] = mu;
    var[size_t(c)] = q / double(N * S);
  }
}

// ---- conv2d

// The geometries are the op-case table's (tests/op_cases.cpp), which gradchecks each and
// compares it across devices; here the forward against the naive loops.
TEST(Conv2d, ForwardMatchesNaiveF64AndF32) {
  default_generator().manual_seed(1);
  for (const test::Conv2dGeometry& g : test::conv2d_geometries()) {
    SCOPED_TRACE(g.name);
    struct {
      Shape x, w;
      bool bias;
      ConvArgs a;
    } c{g.x, g.w, g.bias, {g.stride, g.padding, g.dilation, g.groups}};
    Tensor x = randn(c.x, {.dtype = DType::f64}), w = randn(c.w, {.dtype = DType::f64});
    Tensor b = c.bias ? randn({c.w[0]}, {.dtype = DType::f64}) : Tensor();
    Tensor ref = conv_ref(x, w, b, c.a);
    Tensor got = conv2d(x, w, b, c.a.s, c.a.p, c.a.d, c.a.groups);
    EXPECT_TRUE(all_close(got, ref, 1e-12, 1e-12));
    Tensor bf = b.defined() ? b.to(DType::f32) : Tensor();
    Tensor got32 = conv2d(x.to(DType::f32), w.to(DType::f32), bf, c.a.s, c.a.p, c.a.d, c.a.groups);
    EXPECT_EQ(got32.dtype(), DType::f32);
    EXPECT_TRUE(all_close(got32, ref, 1e-4, 1e-4));
  }
}

TEST(Conv2d, HalfOnCpuComputesInF32) {
  Tensor x = randn({2, 3, 6, 6}), w = randn({4, 3, 3, 3});
  for (DType dt : {DType::f16, DType::bf16}) {
    Tensor xh = x.to(dt), wh = w.to(dt);
    Tensor got = conv2d(xh, wh, Tensor(), {1, 1}, {1, 1});
    EXPECT_EQ(got.dtype(), dt);
    Tensor ref = conv_ref(xh.to(DType::f64), wh.to(DType::f64), Tensor(), {{1, 1}, {1, 1}, {1, 1}, 1});
    EXPECT_TRUE(all_close(got, ref, dt == DType::f16 ? 1e-2 : 5e-2, 5e-2));
  }
}

TEST(Conv2d, NonContiguousInput) {
  Tensor x = randn({2, 5, 6, 3}, {.dtype = DType::f64});
  Tensor xt = permute(x, {0, 3, 1, 2});  // (2, 3, 5, 6), not contiguous
  Tensor w = randn({4, 3, 2, 2}, {.dtype = DType::f64});
  EXPECT_TRUE(all_close(conv2d(xt, w), conv_ref(xt, w, Tensor(), {}), 1e-12, 1e-12));
}

TEST(Conv2d, LargerBatchUsesThreadsConsistently) {
  // Over 2^20 multiply-adds: the images are spread over threads and the weight and bias
  // gradients add per-thread partials.
  const int64_t N = 8, C = 8, O = 16, H = 16;
  Tensor x = randn({N, C, H, H}, {.dtype = DType::f64}).requires_grad_();
  Tensor w = randn({O, C, 3, 3}, {.dtype = DType::f64}).requires_grad_();
  Tensor b = randn({O}, {.dtype = DType::f64}).requires_grad_();
  Tensor y = conv2d(x, w, b, {1, 1}, {1, 1});
  EXPECT_TRUE(all_close(y, conv_ref(x, w, b, {{1, 1}, {1, 1}, {1, 1}, 1}), 1e-12, 1e-12));
  Tensor gy = randn(y.shape(), {.dtype = DType::f64});
  TensorList g = autograd::grad({y}, {x, w, b}, {gy});
  EXPECT_TRUE(all_close(g[2], sum(gy, {0, 2, 3}), 1e-12, 1e-10));
  // Weight gradient entries: sum over n, oh, ow of x(shifted) * gy.
  std::vector<double> gw = g[1].to_vector<double>(), gx = g[0].to_vector<double>();
  std::vector<double> xv = x.to_vector<double>(), gyv = gy.to_vector<double>(), wv = w.to_vector<double>();
  for (int64_t o : {0, 7, 15})
    for (int64_t c : {0, 5})
      for (int64_t i : {0, 2})
        for (int64_t j : {0, 1}) {
          double acc = 0;
          for (int64_t n = 0; n < N; ++n)
            for (int64_t oh = 0; oh < H; ++oh)
              for (int64_t ow = 0; ow < H; ++ow) {
                int64_t ih = oh - 1 + i, iw = ow - 1 + j;
                if (ih < 0 || ih >= H || iw < 0 || iw >= H) continue;
                acc += xv[size_t(((n * C + c) * H + ih) * H + iw)] * gyv[size_t(((n * O + o) * H + oh) * H + ow)];
              }
          EXPECT_NEAR(gw[size_t(((o * C + c) * 3 + i) * 3 + j)], acc, 1e-9);
        }
  // Input gradient entries: sum over o, i, j of w * gy at the outputs that saw the pixel.
  for (int64_t n : {0, 7})
    for (int64_t c : {1, 6})
      for (int64_t ih : {0, 9, 15})
        for (int64_t iw : {0, 15}) {
          double acc = 0;
          for (int64_t o = 0; o < O; ++o)
            for (int64_t i = 0; i < 3; ++i)
              for (int64_t j = 0; j < 3; ++j) {
                int64_t oh = ih + 1 - i, ow = iw + 1 - j;
                if (oh < 0 || oh >= H || ow < 0 || ow >= H) continue;
                acc += wv[size_t(((o * C + c) * 3 + i) * 3 + j)] * gyv[size_t(((n * O + o) * H + oh) * H + ow)];
              }
          EXPECT_NEAR(gx[size_t(((n * C + c) * H + ih) * H + iw)], acc, 1e-9);
        }
}

// Note [Direct convolution]: f32 stride-1 convolutions whose output rows or channels fill
// the AVX2 kernels' tiles run them (forward, weight gradient, and the input gradient as a
// convolution of gy where its padding allows); f64 runs im2col + GEMM, itself checked
// against the naive loops and by gradcheck above. The cases cover both tilings and their
// edges: output channels past a multiple of 6 (rows forward), 3 (rows weight gradient) and
// 16 (channels), tap counts past a multiple of 4 and 6, rows of 10, 16, 20 (16 + 4), 22 and
// LeNet's 28 (16 + 12), rows of 7 to 11 (channels forward: 6 + 1 to 6 + 5 positions).
TEST(Conv2d, F32DirectKernelsMatchF64) {
  using cpu::direct::Tiling;
  struct DirectCase {
    const char* name;
    Shape x, w;
    bool bias;
    ConvArgs a;
    Tiling fwd, gw;  // expected tilings
    bool direct_gx;  // whether the input gradient takes the direct path too
  };
  const Tiling R = Tiling::rows, C = Tiling::channels, N = Tiling::none;
  const std::vector<DirectCase> cases = {
      {"lenet_conv1", {5, 1, 28, 28}, {6, 1, 5, 5}, true, {{1, 1}, {2, 2}, {1, 1}, 1}, R, R, true},
      {"lenet_conv1_threads", {24, 1, 28, 28}, {6, 1, 5, 5}, true, {{1, 1}, {2, 2}, {1, 1}, 1}, R, R, true},
      {"lenet_conv2", {3, 6, 14, 14}, {16, 6, 5, 5}, true, {}, C, C, true},
      {"lenet_conv2_threads", {12, 6, 14, 14}, {16, 6, 5, 5}, true, {}, C, C, true},
      {"channels_20_row_9", {3, 3, 9, 11}, {20, 3, 3, 3}, true, {{1, 1}, {1, 0}, {1, 1}, 1}, C, C, true},
      {"channels_16_row_11", {2, 2, 7, 13}, {16, 2, 3, 3}, true, {}, C, C, true},
      {"channels_16_row_7", {2, 1, 9, 9}, {16, 1, 3, 3}, false, {}, C, C, false},
      {"channels_32_rows_8", {2, 5, 8, 8}, {32, 5, 3, 3}, false, {{1, 1}, {1, 1}, {1, 1}, 1}, C, R, false},
      {"channels_16_dilated", {2, 3, 9, 13}, {16, 3, 3, 2}, true, {{1, 1}, {2, 0}, {2, 3}, 1}, C, C, true},
      {"odd_channels_dilation", {3, 2, 9, 21}, {7, 2, 3, 4}, false, {{1, 1}, {1, 2}, {2, 1}, 1}, R, R, true},
      {"taps_27_row_10", {2, 3, 7, 12}, {5, 3, 3, 3}, true, {}, R, R, true},
      {"row_20", {2, 1, 6, 21}, {2, 1, 2, 2}, true, {}, R, R, true},
      {"row_16", {2, 2, 5, 18}, {4, 2, 3, 3}, true, {}, R, R, false},
      {"resnet_stem", {2, 3, 12, 12}, {8, 3, 3, 3}, false, {{1, 1}, {1, 1}, {1, 1}, 1}, R, R, true},
      {"pad_past_kernel", {2, 2, 10, 10}, {3, 2, 3, 3}, true, {{1, 1}, {3, 3}, {1, 1}, 1}, R, R, false},
  };
  default_generator().manual_seed(4);
  for (const DirectCase& c : cases) {
    SCOPED_TRACE(c.name);
    ConvGeometry g;
    g.n = c.x[0], g.c_in = c.x[1], g.h = c.x[2], g.w = c.x[3];
    g.c_out = c.w[0], g.kh = c.w[2], g.kw = c.w[3];
    g.ph = c.a.p[0], g.pw = c.a.p[1], g.dh = c.a.d[0], g.dw = c.a.d[1];
    g.oh = g.h + 2 * g.ph - g.dh * (g.kh - 1), g.ow = g.w + 2 * g.pw - g.dw * (g.kw - 1);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      EXPECT_EQ(cpu::direct::fwd_tiling(g), c.fwd) << "forward tiling";
      EXPECT_EQ(cpu::direct::grad_weight_tiling(g), c.gw) << "weight-gradient tiling";
      EXPECT_EQ(cpu::direct::eligible_grad_input(g), c.direct_gx);
    }
#endif
    Tensor x = randn(c.x, {.dtype = DType::f64}).requires_grad_();
    Tensor w = randn(c.w, {.dtype = DType::f64}).requires_grad_();
    Tensor b = c.bias ? randn({c.w[0]}, {.dtype = DType::f64}).requires_grad_() : Tensor();
    Tensor y = conv2d(x, w, b, c.a.s, c.a.p, c.a.d, c.a.groups);
    EXPECT_TRUE(all_close(y, conv_ref(x.detach(), w.detach(), c.bias ? b.detach() : Tensor(), c.a), 1e-12, 1e-12));
    Tensor gy = randn(y.shape(), {.dtype = DType::f64});
    TensorList in = c.bias ? TensorList{x, w, b} : TensorList{x, w};
    TensorList ref = autograd::grad({y}, in, {gy});

    Tensor x32 = x.detach().to(DType::f32).requires_grad_();
    Tensor w32 = w.detach().to(DType::f32).requires_grad_();
    Tensor b32 = c.bias ? b.detach().to(DType::f32).requires_grad_() : Tensor();
    Tensor y32 = conv2d(x32, w32, b32, c.a.s, c.a.p, c.a.d, c.a.groups);
    EXPECT_TRUE(all_close(y32, y, 1e-4, 1e-4));
    TensorList in32 = c.bias ? TensorList{x32, w32, b32} : TensorList{x32, w32};
    TensorList got = autograd::grad({y32}, in32, {gy.to(DType::f32)});
    EXPECT_TRUE(all_close(got[0], ref[0], 1e-4, 1e-4)) << "input gradient";
    EXPECT_TRUE(all_close(got[1], ref[1], 1e-4, 1e-3)) << "weight gradient";
    if (c.bias) EXPECT_TRUE(all_close(got[2], ref[2], 1e-4, 1e-3)) << "bias gradient";
    // Only the weight needs a gradient (LeNet's first layer): the direct weight gradient alone.
    Tensor w_only = w.detach().to(DType::f32).requires_grad_();
    Tensor y_only = conv2d(x.detach().to(DType::f32), w_only, Tensor(), c.a.s, c.a.p, c.a.d, c.a.groups);
    EXPECT_TRUE(all_close(autograd::grad({y_only}, {w_only}, {gy.to(DType::f32)})[0], ref[1], 1e-4, 1e-3));
  }
}

// Note [Choosing a CPU convolution algorithm]: every f32 algorithm, forced, against the f64
// path (im2col + GEMM, itself checked against the naive loops and by gradcheck above) on the
// same f32-representable data, forward and both gradients. The tolerances are rounding-error
// bounds, not fits to one run:
// - direct, im2col, batched: each output is a sum of K products rounded in some order, so
//   |err| <= gamma_K * sum |a||b| (Higham, Thm 3.5; gamma_K = K u / (1 - K u), u = 2^-24),
//   with the sums of absolute products computed exactly in f64 by the same convolution of
//   |x| and |w| (and its gradients with |gy|). K: C_in/g * kH * kW (+1 for the bias) forward,
//   C_out/g * kH * kW for the input gradient, N * OH * OW plus the partial sums' adds for the
//   weight gradient.
// - winograd: the bound of Note [Winograd F(4x4, 3x3)] per output element, before its
//   worst-case simplification: gamma_{C+24} * (|A^T| [sum_c (|G||g_c||G^T|) .* (|B^T||d_c||B|)] |A|)
//   for the output's tile and position in it, computed here in f64 from the matrices (the 24:
//   the depth of the input and output transforms, 4 + 4 adds each way, and the weight
//   transform's final rounding; all first-order). The simplified scalar bound (a_max = 48)
//   is checked to hold over it.
double unit_roundoff_f32() { return std::ldexp(1.0, -24); }
double gamma_n(double n) { return n * unit_roundoff_f32() / (1 - n * unit_roundoff_f32()); }

/// a_max = max_i sum_p |A^T_ip| s_G(p) s_B(p) (Note [Winograd F(4x4, 3x3)]).
double winograd_amplification() {
  using namespace cpu::winograd;
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    double a = 0;
    for (int p = 0; p < 6; ++p) {
      double sg = 0, sb = 0;
      for (int k = 0; k < 3; ++k) sg += std::abs(kG[p][k]);
      for (int k = 0; k < 6; ++k) sb += std::abs(kBT[p][k]);
      a += std::abs(kAT[i][p]) * sg * sb;
    }
    best = std::max(best, a);
  }
  return best;
}

/// The per-element Winograd bound without the gamma factor: |A^T| [sum_c (|G||w||G^T|) .*
/// (|B^T||d||B|)] |A| for the F(4x4, 3x3) tiling of the stride-1 3x3 convolution of
/// d (N, C, H, W) with w (O, C, 3, 3), padding (ph, pw), output (N, O, OH, OW).
std::vector<double> winograd_abs_bound(const std::vector<double>& d, const std::vector<double>& w, int64_t N,
                                       int64_t C, int64_t H, int64_t W, int64_t O, int64_t ph, int64_t pw,
                                       int64_t OH, int64_t OW) {
  using namespace cpu::winograd;
  const int64_t th = (OH + 3) / 4, tw = (OW + 3) / 4;
  // |G| |g| |G^T| per (o, c)
  std::vector<double> wa(size_t(O * C * 36));
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int p = 0; p < 6; ++p)
        for (int q = 0; q < 6; ++q) {
          double v = 0;
          for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j) v += std::abs(kG[p][i]) * std::abs(w[size_t(((o * C + c) * 3 + i) * 3 + j)]) * std::abs(kG[q][j]);
          wa[size_t((o * C + c) * 36 + p * 6 + q)] = v;
        }
  std::vector<double> out(size_t(N * O * OH * OW), 0.0);
  std::vector<double> da(size_t(C * 36));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ty = 0; ty < th; ++ty)
      for (int64_t tx = 0; tx < tw; ++tx) {
        for (int64_t c = 0; c < C; ++c)  // |B^T| |d| |B| of this tile's 6x6 patch
          for (int p = 0; p < 6; ++p)
            for (int q = 0; q < 6; ++q) {
              double v = 0;
              for (int i = 0; i < 6; ++i)
                for (int j = 0; j < 6; ++j) {
                  const int64_t ih = 4 * ty - ph + i, iw = 4 * tx - pw + j;
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  v += std::abs(kBT[p][i]) * std::abs(d[size_t(((n * C + c) * H + ih) * W + iw)]) * std::abs(kBT[q][j]);
                }
              da[size_t(c * 36 + p * 6 + q)] = v;
            }
        for (int64_t o = 0; o < O; ++o) {
          double m[36] = {};
          for (int64_t c = 0; c < C; ++c)
            for (int k = 0; k < 36; ++k) m[k] += wa[size_t((o * C + c) * 36 + k)] * da[size_t(c * 36 + k)];
          for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
              const int64_t oh = 4 * ty + i, ow = 4 * tx + j;
              if (oh >= OH || ow >= OW) continue;
              double v = 0;
              for (int p = 0; p < 6; ++p)
                for (int q = 0; q < 6; ++q) v += std::abs(kAT[i][p]) * m[p * 6 + q] * std::abs(kAT[j][q]);
              out[size_t(((n * O + o) * OH + oh) * OW + ow)] = v;
            }
        }
      }
  return out;
}

/// max |got - ref| <= bound elementwise (bound a tensor of the same shape, or a scalar).
void expect_within(const Tensor& got, const Tensor& ref, const Tensor& bound, double scalar, const char* what) {
  auto g = got.to_vector<double>(), r = ref.to_vector<double>();
  std::vector<double> b = bound.defined() ? bound.to_vector<double>() : std::vector<double>();
  ASSERT_EQ(g.size(), r.size()) << what;
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double lim = (b.empty() ? scalar : b[i]) + 1e-12;
    const double e = std::abs(g[i] - r[i]);
    worst = std::max(worst, e / lim);
    if (!(e <= lim)) ++bad;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << g.size() << " outside the bound (worst error / bound "
                    << worst << ")";
}

double max_abs(const Tensor& t) { return max(abs(t)).item(); }

TEST(Conv2d, CpuAlgorithmsMatchF64) {
  using cpu::ConvAlgo;
  using cpu::ConvPass;
  struct Case {
    const char* name;
    Shape x, w;
    bool bias;
    ConvArgs a;
  };
  const std::vector<Case> cases = {
      {"batch1_odd_5x7", {1, 3, 5, 7}, {4, 3, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, 1}},
      {"one_tile_4x4", {3, 8, 4, 4}, {8, 8, 3, 3}, false, {{1, 1}, {1, 1}, {1, 1}, 1}},
      {"no_pad_9x6", {2, 5, 9, 6}, {7, 5, 3, 3}, true, {}},
      {"pad_2", {2, 4, 6, 6}, {6, 4, 3, 3}, false, {{1, 1}, {2, 2}, {1, 1}, 1}},
      {"resnet_like_8x8", {5, 16, 8, 8}, {32, 16, 3, 3}, false, {{1, 1}, {1, 1}, {1, 1}, 1}},
      {"many_images_4x4", {40, 4, 4, 4}, {4, 4, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, 1}},
      {"stride_2", {3, 8, 9, 9}, {16, 8, 3, 3}, false, {{2, 2}, {1, 1}, {1, 1}, 1}},
      {"pointwise", {2, 6, 7, 7}, {5, 6, 1, 1}, true, {}},
      {"shortcut_1x1_s2", {3, 6, 8, 8}, {10, 6, 1, 1}, false, {{2, 2}, {0, 0}, {1, 1}, 1}},
      {"dilated_5x5", {2, 3, 11, 10}, {4, 3, 5, 5}, true, {{1, 1}, {2, 3}, {2, 1}, 1}},
      {"groups_2", {2, 4, 5, 5}, {6, 2, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, 2}},
  };
  const double amp = winograd_amplification();
  EXPECT_NEAR(amp, 48.0, 1e-12);
  default_generator().manual_seed(11);
  const ConvAlgo before = cpu::conv_algo();
  // oneDNN (a chooser candidate in builds that have it) sums K products like the GEMMs: the
  // summation bound (its default direct algorithm; it chooses Winograd only when told to).
  std::vector<ConvAlgo> algos{ConvAlgo::direct, ConvAlgo::im2col, ConvAlgo::batched, ConvAlgo::winograd};
  if (EMBER_WITH_DNNL) algos.push_back(ConvAlgo::dnnl);
  for (ConvAlgo algo : algos) {
    cpu::set_conv_algo(algo);
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(cpu::conv_algo_name(algo)) + " " + c.name);
      // f32 data, and the same values in f64 for the reference.
      Tensor x32 = randn(c.x).requires_grad_(), w32 = randn(c.w).requires_grad_();
      Tensor b32 = c.bias ? randn({c.w[0]}).requires_grad_() : Tensor();
      Tensor x = x32.detach().to(DType::f64).requires_grad_(), w = w32.detach().to(DType::f64).requires_grad_();
      Tensor b = c.bias ? b32.detach().to(DType::f64).requires_grad_() : Tensor();
      const ConvArgs& a = c.a;
      Tensor y = conv2d(x, w, b, a.s, a.p, a.d, a.groups);
      Tensor y32 = conv2d(x32, w32, b32, a.s, a.p, a.d, a.groups);
      const ConvAlgo used_fwd = cpu::last_conv_algo(ConvPass::fwd);
      Tensor gy32 = randn(y.shape());
      Tensor gy = gy32.to(DType::f64);
      TensorList in = c.bias ? TensorList{x, w, b} : TensorList{x, w};
      TensorList in32 = c.bias ? TensorList{x32, w32, b32} : TensorList{x32, w32};
      TensorList ref = autograd::grad({y}, in, {gy});
      TensorList got = autograd::grad({y32}, in32, {gy32});
      const ConvAlgo used_gx = cpu::last_conv_algo(ConvPass::grad_input);
      const ConvAlgo used_gw = cpu::last_conv_algo(ConvPass::grad_weight);

      // The sums of absolute products, exactly (f64 on f32 values).
      Tensor xa = abs(x.detach()).requires_grad_(), wa = abs(w.detach()).requires_grad_();
      Tensor ya = conv2d(xa, wa, c.bias ? abs(b.detach()) : Tensor(), a.s, a.p, a.d, a.groups);
      TensorList abs_g = autograd::grad({ya}, {xa, wa}, {abs(gy)});
      const int64_t cin_g = c.w[1], taps = c.w[2] * c.w[3], cout_g = c.w[0] / a.groups;
      const int64_t n_out = y.size(0) * y.size(2) * y.size(3);
      const double k_fwd = double(cin_g * taps + 1), k_gx = double(cout_g * taps), k_gw = double(n_out + 16);
      // Winograd: its bound where it ran (per element, and the Note's scalar simplification
      // must hold over it), the summation bound otherwise.
      auto wino_bound = [&](const Tensor& data, const std::vector<double>& kernel, int64_t cout, int64_t ph,
                            int64_t pw, const Shape& out_shape) {
        const int64_t n = data.size(0), ch = data.size(1), h = data.size(2), wd = data.size(3);
        std::vector<double> e = winograd_abs_bound(data.to_vector<double>(), kernel, n, ch, h, wd, cout, ph, pw,
                                                   out_shape[2], out_shape[3]);
        double kmax = 0;
        for (double v : kernel) kmax = std::max(kmax, std::abs(v));
        const double scalar = double(ch) * amp * amp * max_abs(data) * kmax;
        for (double& v : e) {
          EXPECT_LE(v, scalar * (1 + 1e-12));
          v *= gamma_n(double(ch + 24));
        }
        return from_vector(e, out_shape, {.dtype = DType::f64});
      };
      if (used_fwd == ConvAlgo::winograd) {
        Tensor bound = wino_bound(x.detach(), w.detach().to_vector<double>(), c.w[0], a.p[0], a.p[1], y.shape());
        if (c.bias) bound = bound + abs(b.detach()).view({1, c.w[0], 1, 1}) * gamma_n(2);
        expect_within(y32, y, bound, 0, "forward");
      } else {
        expect_within(y32, y, ya * gamma_n(k_fwd), 0, "forward");
      }
      if (used_gx == ConvAlgo::winograd) {
        // The input gradient's convolution: gy with w flipped and transposed, padding 2 - p.
        const int64_t O = c.w[0], C = c.w[1];
        std::vector<double> wv = w.detach().to_vector<double>(), wt(wv.size());
        for (int64_t o = 0; o < O; ++o)
          for (int64_t ci = 0; ci < C; ++ci)
            for (int i = 0; i < 3; ++i)
              for (int j = 0; j < 3; ++j)
                wt[size_t(((ci * O + o) * 3 + (2 - i)) * 3 + (2 - j))] = wv[size_t(((o * C + ci) * 3 + i) * 3 + j)];
        expect_within(got[0], ref[0], wino_bound(gy, wt, C, 2 - a.p[0], 2 - a.p[1], x.shape()), 0, "input gradient");
      } else {
        expect_within(got[0], ref[0], abs_g[0] * gamma_n(k_gx), 0, "input gradient");
      }
      expect_within(got[1], ref[1], abs_g[1] * gamma_n(k_gw), 0, "weight gradient");
      if (c.bias) {
        Tensor gb_abs = sum(abs(gy), {0, 2, 3});
        expect_within(got[2], ref[2], gb_abs * gamma_n(double(n_out + 16)), 0, "bias gradient");
      }
      // The forced algorithm ran wherever it is eligible (the others chose for themselves).
      ConvGeometry g;
      g.n = c.x[0], g.c_in = c.x[1], g.h = c.x[2], g.w = c.x[3];
      g.c_out = c.w[0], g.kh = c.w[2], g.kw = c.w[3], g.groups = a.groups;
      g.sh = a.s[0], g.sw = a.s[1], g.ph = a.p[0], g.pw = a.p[1], g.dh = a.d[0], g.dw = a.d[1];
      g.oh = y.size(2), g.ow = y.size(3);
      const bool s1g1 = g.sh == 1 && g.sw == 1 && g.groups == 1;
      const bool wino = s1g1 && g.kh == 3 && g.kw == 3 && g.dh == 1 && g.dw == 1;
      if (algo == ConvAlgo::im2col || (algo == ConvAlgo::batched && g.groups == 1)) {
        EXPECT_EQ(used_fwd, algo);
        EXPECT_EQ(used_gx, algo);
        EXPECT_EQ(used_gw, algo);
      }
      if (algo == ConvAlgo::winograd && wino) {
        EXPECT_EQ(used_fwd, algo);
        if (g.ph <= 2 && g.pw <= 2) EXPECT_EQ(used_gx, algo);
      }
      if (algo == ConvAlgo::direct && cpu::direct::eligible(g)) EXPECT_EQ(used_fwd, algo);
      if (algo == ConvAlgo::dnnl) {
        EXPECT_EQ(used_fwd, algo);
        EXPECT_EQ(used_gx, algo);
        EXPECT_EQ(used_gw, algo);
      }
    }
  }
  cpu::set_conv_algo(before);
}

TEST(Conv2d, CpuAlgorithmChoiceIsMeasuredOnceAndCached) {
  using cpu::ConvAlgo;
  const ConvAlgo before = cpu::conv_algo();
  cpu::set_conv_algo(ConvAlgo::automatic);
  cpu::clear_conv_algo_choices();
  Tensor x = randn({4, 16, 8, 8}).requires_grad_(), w = randn({16, 16, 3, 3}).requires_grad_();
  Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  autograd::grad({y}, {x, w}, {ones_like(y)});
  const std::string report = cpu::conv_algo_choices();
  // One line per pass, each naming every eligible candidate and the pick.
  for (const char* pass : {" fwd ", " grad_input ", " grad_weight "}) EXPECT_NE(report.find(pass), std::string::npos) << report;
  for (const char* algo : {"direct", "im2col", "batched", "winograd", "-> "})
    EXPECT_NE(report.find(algo), std::string::npos) << report;
  // A second call of the same shape measures nothing new, and gives the same values.
  Tensor y2 = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  EXPECT_EQ(cpu::conv_algo_choices(), report);
  EXPECT_TRUE(all_close(y2, y, 0, 0));
  cpu::set_conv_algo(before);
  EXPECT_EQ(cpu::parse_conv_algo("winograd"), ConvAlgo::winograd);
  EXPECT_EQ(cpu::parse_conv_algo("auto"), ConvAlgo::automatic);
  EXPECT_ERROR(cpu::parse_conv_algo("fft"), "expected auto, direct, im2col, batched, winograd or dnnl, got 'fft'");
}

// Note [Algorithm choices travel with the run]: the picks survive export and import, and
// an imported pick is what the next call runs (no new measurement).
TEST(Conv2d, CpuAlgorithmChoicesExportAndImport) {
  using cpu::ConvAlgo;
  using cpu::ConvPass;
  const ConvAlgo before = cpu::conv_algo();
  cpu::set_conv_algo(ConvAlgo::automatic);
  cpu::clear_conv_algo_choices();
  Tensor x = randn({4, 16, 8, 8}), w = randn({16, 16, 3, 3});
  Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  const ConvAlgo measured = cpu::last_conv_algo(ConvPass::fwd);
  const std::string text = cpu::export_conv_algo_choices();
  ASSERT_NE(text.find(cpu::conv_algo_name(measured)), std::string::npos) << text;
  // Another process: nothing measured yet; import a different pick and it runs that one.
  cpu::clear_conv_algo_choices();
  const ConvAlgo other = measured == ConvAlgo::im2col ? ConvAlgo::batched : ConvAlgo::im2col;
  std::string edited = text;
  const std::string name = cpu::conv_algo_name(measured);
  edited.replace(edited.find(name), name.size(), cpu::conv_algo_name(other));
  cpu::import_conv_algo_choices(edited);
  Tensor y2 = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  EXPECT_EQ(cpu::last_conv_algo(ConvPass::fwd), other);
  EXPECT_TRUE(all_close(y2, y, 1e-4, 1e-4));
  EXPECT_EQ(cpu::export_conv_algo_choices(), edited);  // imported as given, nothing re-measured
  // The original picks again: the same algorithm, the same bits as the first process.
  cpu::import_conv_algo_choices(text);
  EXPECT_TRUE(all_close(conv2d(x, w, Tensor(), {1, 1}, {1, 1}), y, 0, 0));
  EXPECT_EQ(cpu::last_conv_algo(ConvPass::fwd), measured);
  // Malformed text is refused whole.
  EXPECT_ERROR(cpu::import_conv_algo_choices("1 2 3 direct\n"), "fewer than 20 numbers");
  EXPECT_ERROR(cpu::import_conv_algo_choices(text.substr(0, text.find('\n')) + " extra\n"), "one algorithm name");
  EXPECT_ERROR(cpu::import_conv_algo_choices("0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 0 fft\n"), "got 'fft'");
  EXPECT_EQ(cpu::export_conv_algo_choices(), text);
  cpu::clear_conv_algo_choices();
  cpu::set_conv_algo(before);
}

TEST(Conv2d, OnlyWeightNeedsGrad) {
  Tensor x = randn({2, 1, 6, 6}, {.dtype = DType::f64});  // e.g. the images: no grad
  Tensor w = leaf({3, 1, 3, 3});
  expect_gradcheck([x](const TensorList& in) { return conv2d(x, in[0], Tensor(), {1, 1}, {2, 2}); }, {w});
  Tensor y = conv2d(x, w);
  y.sum().backward();
  EXPECT_TRUE(w.grad().defined());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Conv2d, Errors) {
  Tensor x = randn({2, 4, 5, 5}), w = randn({6, 4, 3, 3});
  EXPECT_ERROR(conv2d(randn({4, 5, 5}), w), "expected a 4-D input (N, C_in, H, W), got shape [4, 5, 5]");
  EXPECT_ERROR(conv2d(x, randn({6, 4, 3})), "expected a 4-D weight");
  EXPECT_ERROR(conv2d(x, randn({6, 3, 3, 3})), "input [2, 4, 5, 5] has 4 channels, but weight [6, 3, 3, 3]");
  EXPECT_ERROR(conv2d(x, randn({6, 4, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 3), "groups=3 must divide both C_in=4");
  EXPECT_ERROR(conv2d(x, randn({5, 2, 3, 3}), Tensor(), {1, 1}, {0, 0}, {1, 1}, 2), "C_out=5");
  EXPECT_ERROR(conv2d(x, randn({6, 4, 7, 3})), "is larger than the padded input 5x5");
  EXPECT_ERROR(conv2d(x, randn({6, 4, 3, 3}), Tensor(), {1, 1}, {0, 0}, {3, 3}), "kernel 7x7");
  EXPECT_ERROR(conv2d(x, w, randn({5})), "bias must have shape [6]");
  EXPECT_ERROR(conv2d(x, w, Tensor(), {0, 1}), "stride must be positive");
  EXPECT_ERROR(conv2d(x, w, Tensor(), {1, 1}, {-1, 0}), "padding must be non-negative");
  EXPECT_ERROR(conv2d(x, w.to(DType::f64)), "share one floating dtype");
  EXPECT_ERROR(conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 0), "groups must be positive");
}

// ---- pooling

TEST(Pool, MaxForwardIndicesAndBackward) {
  // Hand-made: 1x1x4x4, k=2: each window's max and where the gradient goes.
  Tensor x = from_vector(std::vector<double>{1, 5, 2, 0, 3, 4, 8, 1, 0, 0, 1, 1, 9, 2, 3, 7}, {1, 1, 4, 4},
                         {.dtype = DType::f64})
                 .requires_grad_();
  Tensor y = max_pool2d(x, {2, 2});
  EXPECT_EQ(y.to_vector<double>(), (std::vector<double>{5, 8, 9, 7}));
  y.backward(from_vector(std::vector<double>{1, 2, 3, 4}, {1, 1, 2, 2}, {.dtype = DType::f64}));
  EXPECT_EQ(x.grad().to_vector<double>(),
            (std::vector<double>{0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 3, 0, 0, 4}));
}

// The geometries are the op-case table's (gradchecked and compared across devices there).
TEST(Pool, ForwardMatchesNaive) {
  for (const test::Pool2dGeometry& g : test::pool2d_geometries()) {
    SCOPED_TRACE(g.name);
    struct {
      Shape x;
      std::array<int64_t, 2> k, s, p;
    } c{g.x, g.kernel, g.stride, g.padding};
    Tensor x = randn(c.x, {.dtype = DType::f64});
    EXPECT_TRUE(all_close(max_pool2d(x, c.k, c.s, c.p), pool_ref(x, RefPool::max, c.k, c.s, c.p), 0, 0));
    EXPECT_TRUE(all_close(avg_pool2d(x, c.k, c.s, c.p, true), pool_ref(x, RefPool::avg, c.k, c.s, c.p), 1e-12, 1e-12));
    EXPECT_TRUE(all_close(avg_pool2d(x, c.k, c.s, c.p, false), pool_ref(x, RefPool::avg_nopad, c.k, c.s, c.p),
                          1e-12, 1e-12));
    for (DType dt : {DType::f32, DType::f16, DType::bf16}) {
      Tensor xd = x.to(dt);
      Tensor ref = pool_ref(xd.to(DType::f64), RefPool::max, c.k, c.s, c.p);
      EXPECT_TRUE(all_close(max_pool2d(xd, c.k, c.s, c.p), ref, 0, 0)) << dtype_name(dt);
      double tol = dt == DType::f32 ? 1e-6 : 1e-2;
      EXPECT_TRUE(all_close(avg_pool2d(xd, c.k, c.s, c.p), pool_ref(xd.to(DType::f64), RefPool::avg, c.k, c.s, c.p),
                            tol, tol)) << dtype_name(dt);
    }
  }
  // Default stride = kernel; 3-D input (C, H, W).
  Tensor x3 = randn({2, 6, 4}, {.dtype = DType::f64});
  Tensor y3 = max_pool2d(x3, {2, 2});
  EXPECT_EQ(y3.shape(), (Shape{2, 3, 2}));
  EXPECT_TRUE(all_close(y3, pool_ref(x3.unsqueeze(0), RefPool::max, {2, 2}, {2, 2}, {0, 0}).squeeze(0), 0, 0));
}

TEST(Pool, MaxPropagatesNan) {
  Tensor x = from_vector(std::vector<float>{1, NAN, 3, 4}, {1, 1, 2, 2});
  EXPECT_TRUE(std::isnan(max_pool2d(x, {2, 2}).item<float>()));
}

// The f32 2x2 stride-2 fast path (four windows at a time, the last group overlapping the one
// before it, rows under four windows scalar) against a naive loop: ties go to the first
// maximum in row-major window order, the first NaN wins.
TEST(Pool, Max2x2FastPathTiesAndNan) {
  // Row widths: all scalar (3), one group (4), overlapped tails (5, 11, 14: LeNet's 28 -> 14),
  // and an odd input width whose last column no window reads (W = 2 * OW + 1).
  for (const auto [W, OW] : std::vector<std::pair<int64_t, int64_t>>{{6, 3}, {8, 4}, {10, 5}, {22, 11}, {28, 14}, {23, 11}}) {
  SCOPED_TRACE("W=" + std::to_string(W));
  const int64_t P = 3, H = 6, OH = 3;
  std::vector<float> xv(size_t(P * H * W));
  uint32_t r = 12345;
  for (float& v : xv) {
    r = r * 1664525u + 1013904223u;
    const uint32_t k = (r >> 24) % 16;
    v = k == 0 ? NAN : k == 1 ? -INFINITY : float(k % 3);  // few distinct values: many ties
  }
  Tensor x = from_vector(xv, {1, P, H, W}).requires_grad_();
  Tensor y = max_pool2d(x, {2, 2});
  y.backward(ones_like(y));
  std::vector<float> yv = y.to_vector<float>(), gv = x.grad().to_vector<float>();
  for (int64_t p = 0; p < P; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        float best = -INFINITY;
        int64_t arg = (2 * oh) * W + 2 * ow;
        for (int64_t i = 0; i < 2 && !std::isnan(best); ++i)
          for (int64_t j = 0; j < 2; ++j) {
            const int64_t at = (2 * oh + i) * W + 2 * ow + j;
            const float v = xv[size_t(p * H * W + at)];
            if (std::isnan(v)) { best = v; arg = at; break; }
            if (v > best) { best = v; arg = at; }
          }
        const float got = yv[size_t((p * OH + oh) * OW + ow)];
        EXPECT_TRUE(std::isnan(best) ? std::isnan(got) : got == best) << p << " " << oh << " " << ow;
        for (int64_t i = 0; i < 2; ++i)
          for (int64_t j = 0; j < 2; ++j) {
            const int64_t at = (2 * oh + i) * W + 2 * ow + j;
            EXPECT_EQ(gv[size_t(p * H * W + at)], at == arg ? 1.0f : 0.0f) << p << " " << oh << " " << ow;
          }
      }
  }
}

TEST(Pool, AdaptiveForward) {
  Tensor x = randn({2, 3, 7, 10}, {.dtype = DType::f64});
  for (std::array<int64_t, 2> o : {std::array<int64_t, 2>{1, 1}, {3, 4}, {7, 10}, {5, 3}, {10, 13}}) {
    EXPECT_TRUE(all_close(adaptive_avg_pool2d(x, o), adaptive_ref(x, o[0], o[1]), 1e-12, 1e-12))
        << o[0] << "x" << o[1];
  }
  // Global pooling is the mean over H, W.
  EXPECT_TRUE(all_close(adaptive_avg_pool2d(x, {1, 1}), mean(x, {2, 3}, true), 1e-12, 1e-12));
}

TEST(Pool, Errors) {
  Tensor x = randn({2, 3, 5, 5});
  EXPECT_ERROR(max_pool2d(randn({5, 5}), {2, 2}), "expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape [5, 5]");
  EXPECT_ERROR(max_pool2d(x, {6, 2}), "larger than the padded input 5x5");
  EXPECT_ERROR(avg_pool2d(x, {2, 2}, {0, 0}, {2, 0}), "padding must be between 0 and half the kernel size");
  EXPECT_ERROR(max_pool2d(x, {0, 2}), "kernel size must be positive");
  EXPECT_ERROR(adaptive_avg_pool2d(x, {0, 2}), "output size must be positive");
  EXPECT_ERROR(max_pool2d(randint(0, 3, {1, 1, 4, 4}), {2, 2}), "floating dtype");
}

// ---- batch_norm

TEST(BatchNorm, TrainForwardAndRunningStats) {
  default_generator().manual_seed(4);
  for (Shape shape : {Shape{6, 3}, Shape{4, 3, 5, 2}}) {
    SCOPED_TRACE(shape_str(shape));
    Tensor x = randn(shape, {.dtype = DType::f64}) * 2.0 + 1.0;
    Tensor w = randn({3}, {.dtype = DType::f64}), b = randn({3}, {.dtype = DType::f64});
    Tensor rm = from_vector(std::vector<double>{0.5, -1, 2}, {3}, {.dtype = DType::f64});
    Tensor rv = from_vector(std::vector<double>{1, 2, 0.5}, {3}, {.dtype = DType::f64});
    std::vector<double> mean, var;
    channel_stats(x, mean, var);
    Tensor y = batch_norm(x, rm, rv, w, b, true, 0.2, 1e-3);
    EXPECT_TRUE(all_close(y, bn_ref(x, mean, var, w, b, 1e-3), 1e-12, 1e-12));
    // running = 0.8 * running + 0.2 * batch; the variance is unbiased (m / (m - 1)).
    double m = double(x.numel() / 3);
    std::vector<double> erm = {0.5, -1, 2}, erv = {1, 2, 0.5};
    for (int c = 0; c < 3; ++c) {
      erm[c] = 0.8 * erm[c] + 0.2 * mean[c];
      erv[c] = 0.8 * erv[c] + 0.2 * var[c] * m / (m - 1);
    }
    EXPECT_TRUE(all_close(rm, from_vector(erm, {3}, {.dtype = DType::f64}), 1e-12, 1e-12));
    EXPECT_TRUE(all_close(rv, from_vector(erv, {3}, {.dtype = DType::f64}), 1e-12, 1e-12));
    // f32 agrees with the f64 reference.
    Tensor y32 = batch_norm(x.to(DType::f32), Tensor(), Tensor(), w.to(DType::f32), b.to(DType::f32), true, 0.1, 1e-3);
    EXPECT_TRUE(all_close(y32, bn_ref(x, mean, var, w, b, 1e-3), 1e-5, 1e-5));
  }
}

TEST(BatchNorm, HandComputedRunningStats) {
  // One channel holding 1, 2, 3, 6: mean 3, biased var 3.5, unbiased var 14/3.
  Tensor x = from_vector(std::vector<float>{1, 2, 3, 6}, {4, 1});
  Tensor rm = zeros({1}), rv = ones({1});
  Tensor y = batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 0.0);
  EXPECT_NEAR(rm.item<double>(), 0.3, 1e-7);
  EXPECT_NEAR(rv.item<double>(), 0.9 + 0.1 * 14.0 / 3.0, 1e-6);
  std::vector<float> yv = y.to_vector<float>();
  EXPECT_NEAR(yv[0], -2 / std::sqrt(3.5), 1e-6);
  EXPECT_NEAR(yv[3], 3 / std::sqrt(3.5), 1e-6);
  // A second step moves the buffers again from where they are.
  batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, 0.0);
  EXPECT_NEAR(rm.item<double>(), 0.9 * 0.3 + 0.3, 1e-6);
}

TEST(BatchNorm, EvalUsesRunningStats) {
  Tensor x = randn({3, 2, 4, 3}, {.dtype = DType::f64});
  Tensor rm = from_vector(std::vector<double>{0.5, -1}, {2}, {.dtype = DType::f64});
  Tensor rv = from_vector(std::vector<double>{2, 0.25}, {2}, {.dtype = DType::f64});
  Tensor w = randn({2}, {.dtype = DType::f64}), b = randn({2}, {.dtype = DType::f64});
  Tensor y = batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
  EXPECT_TRUE(all_close(y, bn_ref(x, {0.5, -1}, {2, 0.25}, w, b, 1e-5), 1e-12, 1e-12));
  EXPECT_EQ(rm.to_vector<double>(), (std::vector<double>{0.5, -1}));  // untouched
  EXPECT_EQ(rv.to_vector<double>(), (std::vector<double>{2, 0.25}));
}

TEST(BatchNorm, Errors) {
  Tensor x = randn({4, 3, 2, 2});
  EXPECT_ERROR(batch_norm(randn({4, 3, 2}), Tensor(), Tensor(), Tensor(), Tensor(), true),
               "expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape [4, 3, 2]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), ones({4}), Tensor(), true), "weight must have shape [3]");
  EXPECT_ERROR(batch_norm(x, zeros({2}), ones({3}), Tensor(), Tensor(), true), "running_mean must have shape [3]");
  EXPECT_ERROR(batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false), "eval mode");
  EXPECT_ERROR(batch_norm(randn({1, 3}), Tensor(), Tensor(), Tensor(), Tensor(), true), "more than one value per channel");
  Tensor rq = zeros({3}).requires_grad_();
  EXPECT_ERROR(batch_norm(x, rq, ones({3}), Tensor(), Tensor(), true), "must not require grad");
}

}  // namespace
}  // namespace ember
