// batch_norm over (N, C) or (N, C, H, W): batch statistics and in-place running-stat
// updates in training, running statistics in eval; one backward node for x, weight, bias.
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/batch_norm.h"
#include "tensor/layout.h"

namespace ember {

namespace {

const void* cptr(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }
void* mptr(const Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

#if EMBER_WITH_CUDA
// Training on CUDA: ember's kernels or cuDNN's, whichever is faster for the shape (Note
// [Batch norm: ours or cuDNN's] in kernels/cudnn/batch_norm.cpp) when the build has cuDNN
// and it is on; eval mode is ember's elementwise pass.
void cuda_bn_train_fwd(DType dt, const void* x, const void* w, const void* b, void* y, void* mean, void* invstd,
                       void* rm, void* rv, int64_t n, int64_t c, int64_t s, double momentum, double eps, int dev,
                       cudaStream_t stream) {
#if EMBER_WITH_CUDNN
  if (cudnn::enabled())
    return cudnn::batch_norm_train_fwd(dt, x, w, b, y, mean, invstd, rm, rv, n, c, s, momentum, eps, dev,
                                       deterministic());
#endif
  (void)dev;
  cuda::batch_norm_stats(dt, x, mean, invstd, rm, rv, n, c, s, momentum, eps, stream);
  cuda::batch_norm_apply(dt, x, mean, invstd, w, b, y, n, c, s, stream);
}
void cuda_bn_bwd(DType dt, const void* x, const void* gy, const void* mean, const void* invstd, const void* w,
                 void* gx, void* gw, void* gb, int64_t n, int64_t c, int64_t s, bool training, double eps, int dev,
                 cudaStream_t stream) {
#if EMBER_WITH_CUDNN
  if (training && cudnn::enabled())
    return cudnn::batch_norm_train_bwd(dt, x, gy, mean, invstd, w, gx, gw, gb, n, c, s, eps, dev, deterministic());
#endif
  (void)dev, (void)eps;
  cuda::batch_norm_bwd(dt, x, gy, mean, invstd, w, gx, gw, gb, n, c, s, training, stream);
}
#endif

// `pdt`: the dtype the parameters must have (the input's, or f32 for a 16-bit input with
// f32 parameters: Note [Mixed batch norm]).
void check_param(const Tensor& p, const char* what, const Tensor& x, DType pdt) {
  if (!p.defined()) return;
  EMBER_CHECK(p.dim() == 1 && p.size(0) == x.size(1), "batch_norm: ", what, " must have shape [",
              x.size(1), "] for input ", x.shape_str(), ", got ", p.shape_str());
  EMBER_CHECK(p.dtype() == pdt && p.device() == x.device(), "batch_norm: ", what,
              " must match the input's dtype and device (", dtype_name(pdt), " on ",
              x.device().str(), (pdt != x.dtype() ? ", as the other parameters" : ""), "), got ",
              dtype_name(p.dtype()), " on ", p.device().str(),
              (is_floating(x.dtype()) && x.dtype() != DType::f64 && x.dtype() != DType::f32
                   ? " (a 16-bit input takes parameters of its own dtype or f32)" : ""));
}

// Note [Mixed batch norm]: a 16-bit (f16/bf16) input with f32 weight, bias and running
// statistics, as autocast gives it (the parameters stay f32 master weights): the input is
// widened to f32 for the kernels, statistics and parameter gradients are f32, and the
// output and the input gradient have the input's dtype. Only the 16-bit input is saved
// for backward, so autocast's activations stay 16-bit.
DType param_dtype(const Tensor& x, std::initializer_list<const Tensor*> params) {
  if (x.dtype() != DType::f16 && x.dtype() != DType::bf16) return x.dtype();
  for (const Tensor* p : params)
    if (p->defined()) return p->dtype() == DType::f32 ? DType::f32 : x.dtype();
  return x.dtype();
}

struct BatchNormBackward : autograd::Node {
  autograd::SavedTensor x, weight, mean, invstd;
  bool training = true;
  double eps = 1e-5;           // cuDNN's backward takes the forward's
  DType compute = DType::f32;  // the kernels' dtype (Note [Mixed batch norm])
  std::string name() const override { return "BatchNormBackward"; }
  void release_saved() override {
    x.reset();
    weight.reset();
    mean.reset();
    invstd.reset();
  }
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor()};
    Tensor X_in = x.unpack(*this), W = weight.unpack(*this), M = mean.unpack(*this),
           I = invstd.unpack(*this);
    Tensor X = X_in.to(compute).contiguous();
    if (W.defined()) W = W.contiguous();
    Tensor gy = grads[0].to(compute).contiguous();
    const int64_t n = X.size(0), c = X.size(1), s = X.numel() / std::max<int64_t>(1, n * c);
    TensorOptions o{.dtype = X.dtype(), .device = X.device()};
    Tensor gx = next[0].valid() ? empty(X.shape(), o) : Tensor();
    Tensor gw = next[1].valid() ? empty({c}, o) : Tensor();
    Tensor gb = next[2].valid() ? empty({c}, o) : Tensor();
    on_device(
        X.device(), "batch_norm backward",
        [&] {
          cpu::batch_norm_bwd(X.dtype(), X.data_ptr(), gy.data_ptr(), M.data_ptr(), I.data_ptr(), cptr(W), mptr(gx),
                              mptr(gw), mptr(gb), n, c, s, training);
        },
        EMBER_ON_CUDA(cuda_bn_bwd(X.dtype(), X.data_ptr(), gy.data_ptr(), M.data_ptr(), I.data_ptr(), cptr(W),
                                  mptr(gx), mptr(gw), mptr(gb), n, c, s, training, eps, X.device().index,
                                  stream)));
    if (gx.defined() && gx.dtype() != X_in.dtype()) gx = gx.to(X_in.dtype());
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor batch_norm(const Tensor& x_in, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  EMBER_CHECK(x_in.defined(), "batch_norm: undefined input");
  EMBER_CHECK(x_in.dim() == 2 || x_in.dim() == 4,
              "batch_norm: expected a 2-D (N, C) or 4-D (N, C, H, W) input, got shape ", x_in.shape_str());
  EMBER_CHECK(is_floating(x_in.dtype()), "batch_norm: expected a floating dtype, got ",
              dtype_name(x_in.dtype()));
  check_device_available(x_in.device(), "batch_norm");
  const DType pdt = param_dtype(x_in, {&weight, &bias, &running_mean, &running_var});
  check_param(weight, "weight", x_in, pdt);
  check_param(bias, "bias", x_in, pdt);
  check_param(running_mean, "running_mean", x_in, pdt);
  check_param(running_var, "running_var", x_in, pdt);
  EMBER_CHECK(eps >= 0, "batch_norm: eps must be non-negative, got ", eps);
  for (const Tensor* r : {&running_mean, &running_var}) {
    if (!r->defined()) continue;
    EMBER_CHECK(!r->requires_grad(), "batch_norm: running statistics must not require grad");
    EMBER_CHECK(r->is_contiguous(), "batch_norm: running statistics must be contiguous");
  }
  if (!training) {
    EMBER_CHECK(running_mean.defined() && running_var.defined(),
                "batch_norm: eval mode (training=false) needs running_mean and running_var");
  }
  const int64_t n = x_in.size(0), c = x_in.size(1);
  const int64_t s = x_in.dim() == 4 ? x_in.size(2) * x_in.size(3) : 1;
  if (training) {
    EMBER_CHECK(n * s > 1, "batch_norm: training needs more than one value per channel, got input ",
                x_in.shape_str());
  }
  Tensor x = x_in.detach().to(pdt).contiguous();  // pdt: the compute dtype
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  const DType sd = batch_norm_stat_dtype(x.dtype());
  TensorOptions so{.dtype = sd, .device = x.device()};
  Tensor mean, invstd;
  if (training) {
    mean = empty({c}, so);
    invstd = empty({c}, so);
  } else {
    NoGradGuard ng;
    mean = running_mean.to(sd).contiguous();
    invstd = rsqrt(add(running_var.to(sd), eps)).contiguous();
    if (mean.is_same(running_mean)) mean = mean.clone();  // the saved copy must not change later
  }
  Tensor y = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
  if (x.numel() > 0) {
    on_device(
        x.device(), "batch_norm",
        [&] {
          if (training)
            cpu::batch_norm_stats(x.dtype(), x.data_ptr(), mean.data_ptr(), invstd.data_ptr(), mptr(running_mean),
                                  mptr(running_var), n, c, s, momentum, eps);
          cpu::batch_norm_apply(x.dtype(), x.data_ptr(), mean.data_ptr(), invstd.data_ptr(), cptr(w), cptr(b),
                                y.data_ptr(), n, c, s);
        },
        EMBER_ON_CUDA(if (training) cuda_bn_train_fwd(x.dtype(), x.data_ptr(), cptr(w), cptr(b), y.data_ptr(),
                                                      mean.data_ptr(), invstd.data_ptr(), mptr(running_mean),
                                                      mptr(running_var), n, c, s, momentum, eps,
                                                      x.device().index, stream);
                      else cuda::batch_norm_apply(x.dtype(), x.data_ptr(), mean.data_ptr(), invstd.data_ptr(),
                                                  cptr(w), cptr(b), y.data_ptr(), n, c, s, stream)));
    if (training) {
      if (running_mean.defined()) running_mean.bump_version();
      if (running_var.defined()) running_var.bump_version();
    }
  }
  if (y.dtype() != x_in.dtype()) y = y.to(x_in.dtype());  // y has no history yet
  if (auto node = autograd::make_node<BatchNormBackward>({x_in, weight, bias})) {
    node->x = x_in;
    node->compute = pdt;
    if (weight.defined()) node->weight = weight;
    node->mean = mean;
    node->invstd = invstd;
    node->training = training;
    node->eps = eps;
    autograd::set_history(y, node);
  }
  return y;
}

}  // namespace ember
