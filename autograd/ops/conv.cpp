// conv2d: checks, device dispatch (CPU im2col+GEMM, cuDNN, or direct CUDA kernels) and
// the backward node that computes the input, weight and bias gradients in one pass.
#include <atomic>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"
#include "tensor/layout.h"

namespace ember {

namespace {
std::atomic<bool> g_deterministic{false};
}  // namespace
void set_deterministic(bool on) {
  g_deterministic = on;
  cpu::set_blas_single_threaded(on);
}
bool deterministic() { return g_deterministic; }

namespace cudnn {
namespace {
std::atomic<bool> g_enabled{true};
}  // namespace
void set_deterministic(bool on) { ember::set_deterministic(on); }
bool deterministic() { return ember::deterministic(); }
void set_enabled(bool on) { g_enabled = on; }
bool enabled() { return EMBER_WITH_CUDNN && g_enabled; }
}  // namespace cudnn

namespace {

std::string arr_str(std::array<int64_t, 2> a) {
  return detail::str_cat("(", a[0], ", ", a[1], ")");
}

ConvGeometry conv_geometry(const Tensor& x, const Tensor& w, const Tensor& b,
                           std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                           std::array<int64_t, 2> dilation, int64_t groups) {
  EMBER_CHECK(x.defined() && w.defined(), "conv2d: input and weight must be defined");
  EMBER_CHECK(x.dim() == 4, "conv2d: expected a 4-D input (N, C_in, H, W), got shape ",
              x.shape_str());
  EMBER_CHECK(w.dim() == 4, "conv2d: expected a 4-D weight (C_out, C_in / groups, kH, kW), got shape ",
              w.shape_str());
  EMBER_CHECK(is_floating(x.dtype()) && x.dtype() == w.dtype(),
              "conv2d: input and weight must share one floating dtype, got ", dtype_name(x.dtype()),
              " and ", dtype_name(w.dtype()));
  EMBER_CHECK(x.device() == w.device(), "conv2d: input is on ", x.device().str(),
              " but weight is on ", w.device().str());
  EMBER_CHECK(stride[0] >= 1 && stride[1] >= 1, "conv2d: stride must be positive, got ",
              arr_str(stride));
  EMBER_CHECK(dilation[0] >= 1 && dilation[1] >= 1, "conv2d: dilation must be positive, got ",
              arr_str(dilation));
  EMBER_CHECK(padding[0] >= 0 && padding[1] >= 0, "conv2d: padding must be non-negative, got ",
              arr_str(padding));
  ConvGeometry g;
  g.n = x.size(0), g.c_in = x.size(1), g.h = x.size(2), g.w = x.size(3);
  g.c_out = w.size(0), g.kh = w.size(2), g.kw = w.size(3);
  g.sh = stride[0], g.sw = stride[1], g.ph = padding[0], g.pw = padding[1];
  g.dh = dilation[0], g.dw = dilation[1], g.groups = groups;
  EMBER_CHECK(groups >= 1, "conv2d: groups must be positive, got ", groups);
  EMBER_CHECK(g.c_in % groups == 0 && g.c_out % groups == 0, "conv2d: groups=", groups,
              " must divide both C_in=", g.c_in, " and C_out=", g.c_out, " (input ", x.shape_str(),
              ", weight ", w.shape_str(), ")");
  EMBER_CHECK(w.size(1) * groups == g.c_in, "conv2d: input ", x.shape_str(), " has ", g.c_in,
              " channels, but weight ", w.shape_str(), " with groups=", groups, " expects ",
              w.size(1) * groups);
  EMBER_CHECK(g.c_out > 0 && g.kh > 0 && g.kw > 0, "conv2d: empty weight ", w.shape_str());
  if (b.defined()) {
    EMBER_CHECK(b.dim() == 1 && b.size(0) == g.c_out, "conv2d: bias must have shape [", g.c_out,
                "] for weight ", w.shape_str(), ", got ", b.shape_str());
    EMBER_CHECK(b.dtype() == x.dtype() && b.device() == x.device(),
                "conv2d: bias must match the input's dtype and device, got ", dtype_name(b.dtype()),
                " on ", b.device().str());
  }
  const int64_t ekh = (g.kh - 1) * g.dh + 1, ekw = (g.kw - 1) * g.dw + 1;
  EMBER_CHECK(ekh <= g.h + 2 * g.ph && ekw <= g.w + 2 * g.pw, "conv2d: kernel ", ekh, "x", ekw,
              " (weight ", w.shape_str(), ", dilation ", arr_str(dilation),
              ") is larger than the padded input ", g.h + 2 * g.ph, "x", g.w + 2 * g.pw,
              " (input ", x.shape_str(), ", padding ", arr_str(padding), ")");
  g.oh = (g.h + 2 * g.ph - ekh) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - ekw) / g.sw + 1;
  return g;
}

const void* ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }
void* mut_ptr_or_null(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

/// The compute dtype: CPU kernels run f16/bf16 in f32.
DType compute_dtype(const Tensor& x) {
  if (x.device().is_cpu() && (x.dtype() == DType::f16 || x.dtype() == DType::bf16)) return DType::f32;
  return x.dtype();
}

Tensor prep(const Tensor& t, DType dt) {
  if (!t.defined()) return t;
  return t.detach().to(dt).contiguous();
}

#if EMBER_WITH_CUDA
// cuDNN when the build has it and it is on (it runs on the device's current stream), else
// ember's direct kernels.
void cuda_conv_fwd(DType dt, const void* x, const void* w, const void* b, void* y, const ConvGeometry& g, int dev,
                   cudaStream_t stream) {
#if EMBER_WITH_CUDNN
  if (cudnn::enabled()) return cudnn::conv2d_fwd(dt, x, w, b, y, g, dev, cudnn::deterministic());
#endif
  (void)dev;
  cuda::conv2d_fwd(dt, x, w, b, y, g, stream);
}
void cuda_conv_bwd(DType dt, const void* x, const void* w, const void* gy, void* gx, void* gw, void* gb,
                   const ConvGeometry& g, int dev, cudaStream_t stream) {
#if EMBER_WITH_CUDNN
  if (cudnn::enabled()) return cudnn::conv2d_bwd(dt, x, w, gy, gx, gw, gb, g, dev, cudnn::deterministic());
#endif
  (void)dev;
  cuda::conv2d_bwd(dt, x, w, gy, gx, gw, gb, g, stream);
}
#endif

/// Forward without autograd.
Tensor conv_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, const ConvGeometry& g) {
  check_device_available(x_in.device(), "conv2d");
  DType dt = compute_dtype(x_in);
  Tensor x = prep(x_in, dt), w = prep(w_in, dt), b = prep(b_in, dt);
  Tensor y = empty({g.n, g.c_out, g.oh, g.ow}, {.dtype = dt, .device = x.device()});
  if (y.numel() > 0) {
    if (g.c_in == 0) {
      y.fill_(0.0);
      if (b.defined()) y.add_(b.view({1, g.c_out, 1, 1}));
    } else {
      on_device(
          x.device(), "conv2d", [&] { cpu::conv2d_fwd(dt, x.data_ptr(), w.data_ptr(), ptr_or_null(b), y.data_ptr(), g, deterministic()); },
          EMBER_ON_CUDA(cuda_conv_fwd(dt, x.data_ptr(), w.data_ptr(), ptr_or_null(b), y.data_ptr(), g,
                                      x.device().index, stream)));
    }
  }
  return dt == x_in.dtype() ? y : y.to(x_in.dtype());
}

struct Conv2dBackward : autograd::Node {
  autograd::SavedTensor x, w;
  ConvGeometry geom;
  std::string name() const override { return "Conv2dBackward"; }
  void release_saved() override {
    x.reset();
    w.reset();
  }
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor()};
    Tensor X = x.unpack(*this), W = w.unpack(*this);
    const bool need_x = next[0].valid(), need_w = next[1].valid(), need_b = next[2].valid();
    DType dt = compute_dtype(X);
    Tensor xc = prep(X, dt), wc = prep(W, dt), gy = prep(grads[0], dt);
    TensorOptions o{.dtype = dt, .device = X.device()};
    Tensor gx = need_x ? empty(X.shape(), o) : Tensor();
    Tensor gw = need_w ? empty(W.shape(), o) : Tensor();
    Tensor gb = need_b ? empty({geom.c_out}, o) : Tensor();
    const ConvGeometry& g = geom;
    if (gy.numel() == 0 || g.c_in == 0) {
      for (Tensor* t : {&gx, &gw, &gb})
        if (t->defined()) t->fill_(0.0);
      if (gb.defined() && gy.numel() > 0) gb.copy_(sum(gy, {0, 2, 3}));
    } else {
      on_device(
          X.device(), "conv2d backward",
          [&] {
            cpu::conv2d_bwd(dt, xc.data_ptr(), wc.data_ptr(), gy.data_ptr(), mut_ptr_or_null(gx), mut_ptr_or_null(gw),
                            mut_ptr_or_null(gb), g, deterministic());
          },
          EMBER_ON_CUDA(cuda_conv_bwd(dt, xc.data_ptr(), wc.data_ptr(), gy.data_ptr(), mut_ptr_or_null(gx),
                                      mut_ptr_or_null(gw), mut_ptr_or_null(gb), g, X.device().index, stream)));
    }
    auto back = [&](const Tensor& t) { return t.defined() && t.dtype() != X.dtype() ? t.to(X.dtype()) : t; };
    return {back(gx), back(gw), back(gb)};
  }
};

}  // namespace

Tensor conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in, std::array<int64_t, 2> stride,
              std::array<int64_t, 2> padding, std::array<int64_t, 2> dilation, int64_t groups) {
  auto [x, w, b] = autocast::inputs(autocast::Op::conv2d, x_in, w_in, b_in);
  ConvGeometry g = conv_geometry(x, w, b, stride, padding, dilation, groups);
  Tensor y = conv_forward(x, w, b, g);
  if (auto node = autograd::make_node<Conv2dBackward>({x, w, b})) {
    node->x = x;
    node->w = w;
    node->geom = g;
    autograd::set_history(y, node);
  }
  return y;
}

std::string conv_algorithm_choices() { return cpu::export_conv_algo_choices(); }
void load_conv_algorithm_choices(const std::string& text) { cpu::import_conv_algo_choices(text); }

}  // namespace ember
