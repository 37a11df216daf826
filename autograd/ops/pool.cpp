// Pooling ops: max_pool2d (argmax indices saved for backward), avg_pool2d and
// adaptive_avg_pool2d over (N, C, H, W) or (C, H, W) inputs.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/pool.h"
#include "tensor/layout.h"

namespace ember {

namespace {

enum class PoolKind { max, avg, adaptive };

const char* pool_name(PoolKind k) {
  switch (k) {
    case PoolKind::max: return "max_pool2d";
    case PoolKind::avg: return "avg_pool2d";
    case PoolKind::adaptive: return "adaptive_avg_pool2d";
  }
  return "?";
}

void check_input(const Tensor& x, const char* op) {
  EMBER_CHECK(x.defined(), op, ": undefined input");
  EMBER_CHECK(x.dim() == 3 || x.dim() == 4, op, ": expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape ",
              x.shape_str());
  EMBER_CHECK(is_floating(x.dtype()), op, ": expected a floating dtype, got ", dtype_name(x.dtype()));
  EMBER_CHECK(x.size(-1) > 0 && x.size(-2) > 0, op, ": input ", x.shape_str(), " has an empty plane");
  check_device_available(x.device(), op);
}

/// Geometry of a windowed pool, with PyTorch's checks (floor mode).
PoolGeometry window_geometry(const Tensor& x, std::array<int64_t, 2> k, std::array<int64_t, 2> s,
                             std::array<int64_t, 2> p, const char* op) {
  check_input(x, op);
  if (s[0] == 0 && s[1] == 0) s = k;
  EMBER_CHECK(k[0] > 0 && k[1] > 0, op, ": kernel size must be positive, got (", k[0], ", ", k[1], ")");
  EMBER_CHECK(s[0] > 0 && s[1] > 0, op, ": stride must be positive, got (", s[0], ", ", s[1], ")");
  EMBER_CHECK(p[0] >= 0 && p[1] >= 0 && 2 * p[0] <= k[0] && 2 * p[1] <= k[1], op,
              ": padding must be between 0 and half the kernel size, got padding (", p[0], ", ",
              p[1], ") for kernel (", k[0], ", ", k[1], ")");
  PoolGeometry g;
  g.h = x.size(-2), g.w = x.size(-1);
  g.planes = x.numel() / (g.h * g.w);
  g.kh = k[0], g.kw = k[1], g.sh = s[0], g.sw = s[1], g.ph = p[0], g.pw = p[1];
  EMBER_CHECK(g.kh <= g.h + 2 * g.ph && g.kw <= g.w + 2 * g.pw, op, ": kernel (", g.kh, ", ", g.kw,
              ") is larger than the padded input ", g.h + 2 * g.ph, "x", g.w + 2 * g.pw, " (input ",
              x.shape_str(), ", padding (", g.ph, ", ", g.pw, "))");
  g.oh = (g.h + 2 * g.ph - g.kh) / g.sh + 1;
  g.ow = (g.w + 2 * g.pw - g.kw) / g.sw + 1;
  return g;
}

Shape out_shape(const Tensor& x, const PoolGeometry& g) {
  Shape s = x.shape();
  s[s.size() - 2] = g.oh;
  s[s.size() - 1] = g.ow;
  return s;
}

/// Runs the forward kernel of `kind` on a contiguous copy of x; idx gets max's argmax.
Tensor pool_forward(PoolKind kind, const Tensor& x_in, const PoolGeometry& g, bool include_pad,
                    Tensor* idx) {
  Tensor x = x_in.detach().contiguous();
  Tensor y = empty(out_shape(x, g), {.dtype = x.dtype(), .device = x.device()});
  if (kind == PoolKind::max) *idx = empty(y.shape(), {.dtype = DType::i64, .device = x.device()});
  if (y.numel() == 0) return y;
  on_device(
      x.device(), "pool2d",
      [&] {
        switch (kind) {
          case PoolKind::max: cpu::max_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), idx->data<int64_t>(), g); break;
          case PoolKind::avg: cpu::avg_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), g, include_pad); break;
          case PoolKind::adaptive: cpu::adaptive_avg_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), g); break;
        }
      },
      EMBER_ON_CUDA(switch (kind) {
        case PoolKind::max:
          cuda::max_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), idx->data<int64_t>(), g, stream);
          break;
        case PoolKind::avg: cuda::avg_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), g, include_pad, stream); break;
        case PoolKind::adaptive: cuda::adaptive_avg_pool2d_fwd(x.dtype(), x.data_ptr(), y.data_ptr(), g, stream); break;
      }));
  return y;
}

struct PoolBackward : autograd::Node {
  PoolKind kind = PoolKind::max;
  PoolGeometry geom;
  bool include_pad = true;
  Shape in_shape;
  DType dtype = DType::f32;
  Device device = kCPU;
  autograd::SavedTensor idx;  // max only
  std::string name() const override {
    switch (kind) {
      case PoolKind::max: return "MaxPool2dBackward";
      case PoolKind::avg: return "AvgPool2dBackward";
      case PoolKind::adaptive: return "AdaptiveAvgPool2dBackward";
    }
    return "?";
  }
  void release_saved() override { idx.reset(); }
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    Tensor gy = grads[0].contiguous();
    Tensor gx = empty(in_shape, {.dtype = dtype, .device = device});
    Tensor I = kind == PoolKind::max ? idx.unpack(*this) : Tensor();
    const PoolGeometry& g = geom;
    if (gy.numel() == 0) return {gx.fill_(0.0)};
    on_device(
        device, "pool2d backward",
        [&] {
          switch (kind) {
            case PoolKind::max: cpu::max_pool2d_bwd(dtype, gy.data_ptr(), I.data<int64_t>(), gx.data_ptr(), g); break;
            case PoolKind::avg: cpu::avg_pool2d_bwd(dtype, gy.data_ptr(), gx.data_ptr(), g, include_pad); break;
            case PoolKind::adaptive: cpu::adaptive_avg_pool2d_bwd(dtype, gy.data_ptr(), gx.data_ptr(), g); break;
          }
        },
        EMBER_ON_CUDA(switch (kind) {
          case PoolKind::max: cuda::max_pool2d_bwd(dtype, gy.data_ptr(), I.data<int64_t>(), gx.data_ptr(), g, stream); break;
          case PoolKind::avg: cuda::avg_pool2d_bwd(dtype, gy.data_ptr(), gx.data_ptr(), g, include_pad, stream); break;
          case PoolKind::adaptive: cuda::adaptive_avg_pool2d_bwd(dtype, gy.data_ptr(), gx.data_ptr(), g, stream); break;
        }));
    return {gx};
  }
};

Tensor pool(PoolKind kind, const Tensor& x, const PoolGeometry& g, bool include_pad) {
  Tensor idx;
  Tensor y = pool_forward(kind, x, g, include_pad, &idx);
  if (auto node = autograd::make_node<PoolBackward>({x})) {
    node->kind = kind;
    node->geom = g;
    node->include_pad = include_pad;
    node->in_shape = x.shape();
    node->dtype = x.dtype();
    node->device = x.device();
    if (kind == PoolKind::max) node->idx = idx;
    autograd::set_history(y, node);
  }
  return y;
}

}  // namespace

Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding) {
  PoolGeometry g = window_geometry(x, kernel, stride, padding, pool_name(PoolKind::max));
  return pool(PoolKind::max, x, g, true);
}

Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel, std::array<int64_t, 2> stride,
                  std::array<int64_t, 2> padding, bool count_include_pad) {
  PoolGeometry g = window_geometry(x, kernel, stride, padding, pool_name(PoolKind::avg));
  return pool(PoolKind::avg, x, g, count_include_pad);
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size) {
  const char* op = pool_name(PoolKind::adaptive);
  check_input(x, op);
  EMBER_CHECK(output_size[0] > 0 && output_size[1] > 0, op, ": output size must be positive, got (",
              output_size[0], ", ", output_size[1], ") for input ", x.shape_str());
  PoolGeometry g;
  g.h = x.size(-2), g.w = x.size(-1);
  g.planes = x.numel() / (g.h * g.w);
  g.oh = output_size[0], g.ow = output_size[1];
  return pool(PoolKind::adaptive, x, g, true);
}

}  // namespace ember
