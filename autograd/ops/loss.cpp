// cross_entropy (fused log-softmax + NLL), nll_loss and mse_loss, as PyTorch defines them.
#include "kernels/loss.h"

#include "kernels/index.h"

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "tensor/layout.h"

namespace ember {

namespace {

// Per-row losses accumulate in f32 (f64 for f64 inputs).
DType acc_dtype(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

struct LossGeometry {
  LossShape s;
  Shape none_shape;  // the shape of reduction=none: the labels' shape
};

// input (N, C, d...) with labels (N, d...), or input (C) with a 0-d label.
LossGeometry loss_geometry(const Tensor& input, const Tensor& labels, const char* op) {
  EMBER_CHECK(input.defined() && labels.defined(), op, ": undefined input or labels");
  EMBER_CHECK(is_floating(input.dtype()), op,
              ": expected floating input (f32, f64, f16, bf16), got ", input.dtype());
  EMBER_CHECK(labels.dtype() == DType::i64 || labels.dtype() == DType::i32, op,
              ": labels must be i64 or i32 class indices, got ", labels.dtype());
  EMBER_CHECK(input.device() == labels.device(), op, ": input on ", input.device(),
              " but labels on ", labels.device());
  EMBER_CHECK(input.dim() >= 1, op, ": input must be (C), (N, C) or (N, C, d...), got ",
              input.shape_str());
  check_device_available(input.device(), op);
  LossGeometry g;
  Shape expect;
  if (input.dim() == 1) {
    g.s.C = input.size(0);
  } else {
    g.s.outer = input.size(0);
    g.s.C = input.size(1);
    expect.push_back(input.size(0));
    for (int64_t d = 2; d < input.dim(); ++d) {
      g.s.inner *= input.size(d);
      expect.push_back(input.size(d));
    }
  }
  EMBER_CHECK(labels.shape() == expect, op, ": labels of shape ", labels.shape_str(),
              " do not match input of shape ", input.shape_str(), " (expected labels of shape ",
              shape_str(expect), ")");
  g.none_shape = expect;
  return g;
}

Tensor labels_i64(const Tensor& labels) {
  return contiguous_raw(labels.dtype() == DType::i64 ? labels : labels.to(DType::i64));
}

std::string bad_label_message(const char* op, int64_t label, int64_t row, const LossShape& s,
                              int64_t ignore_index) {
  return detail::str_cat(op, ": label ", label, " at position ", row, " is out of range for ", s.C,
                         " classes (expected 0 <= label < ", s.C, ", or ignore_index ",
                         ignore_index, ")");
}

// Throws when the CPU kernel found a label outside [0, C) that is not ignore_index.
void check_bad_row(int64_t bad, const Tensor& lab, const LossShape& s, int64_t ignore_index,
                   const char* op) {
  if (bad >= s.rows()) return;
  int64_t label = lab.data<int64_t>()[bad];  // lab is contiguous i64 on the CPU
  throw Error(bad_label_message(op, label, bad, s, ignore_index));
}

// The reduction of per-row losses; `count` (0-d) is the number of non-ignored rows.
Tensor reduce_rows(const Tensor& loss, const Tensor& valid, Reduction r, const Shape& none_shape,
                   DType out_dtype, Tensor* count) {
  NoGradGuard no_grad;
  Tensor out;
  switch (r) {
    case Reduction::none: out = loss.reshape(none_shape); break;
    case Reduction::sum: out = sum(loss); break;
    case Reduction::mean:
      *count = sum(valid);
      out = div(sum(loss), *count);  // 0 / 0 = nan when every label is ignored, as PyTorch
      break;
  }
  return out.dtype() == out_dtype ? out : out.to(out_dtype);
}

// The incoming gradient as per-row factors in the accumulation type: a contiguous (rows)
// tensor for reduction none (stride 1), else one value (stride 0).
Tensor row_grad(const Tensor& g, Reduction r, const Tensor& count, DType acc, int64_t* stride) {
  Tensor ga = g.dtype() == acc ? g : g.to(acc);
  if (r == Reduction::none) {
    *stride = 1;
    return contiguous_raw(ga);
  }
  *stride = 0;
  return r == Reduction::mean ? div(ga, count) : contiguous_raw(ga);
}

struct CrossEntropyBackward : autograd::Node {
  autograd::SavedTensor logits_, labels_, lse_, count_;
  LossShape s;
  Reduction reduction = Reduction::mean;
  double smoothing = 0;
  int64_t ignore_index = -100;
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    Tensor x = logits_.unpack(*this), lab = labels_.unpack(*this), lse = lse_.unpack(*this);
    Tensor count = count_.unpack(*this);
    int64_t gs = 0;
    Tensor g = row_grad(grads[0], reduction, count, lse.dtype(), &gs);
    Tensor gx = empty(x.shape(), {.dtype = x.dtype(), .device = x.device()});
    on_device(
        x.device(), "cross_entropy backward",
        [&] {
          cpu::cross_entropy_bwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), lse.data_ptr(), g.data_ptr(), gs,
                                 gx.data_ptr(), s, smoothing, ignore_index);
        },
        EMBER_ON_CUDA(cuda::cross_entropy_bwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), lse.data_ptr(),
                                              g.data_ptr(), gs, gx.data_ptr(), s, smoothing, ignore_index, stream)));
    return {gx};
  }
  std::string name() const override { return "CrossEntropyBackward"; }
  void release_saved() override {
    logits_.reset();
    labels_.reset();
    lse_.reset();
    count_.reset();
  }
};

struct NllLossBackward : autograd::Node {
  autograd::SavedTensor labels_, count_;
  LossShape s;
  Shape input_shape;
  DType input_dtype = DType::f32;
  Reduction reduction = Reduction::mean;
  int64_t ignore_index = -100;
  TensorList apply(TensorList&& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    Tensor lab = labels_.unpack(*this), count = count_.unpack(*this);
    int64_t gs = 0;
    Tensor g = row_grad(grads[0], reduction, count, acc_dtype(input_dtype), &gs);
    Tensor gx = empty(input_shape, {.dtype = input_dtype, .device = lab.device()});
    on_device(
        lab.device(), "nll_loss backward",
        [&] { cpu::nll_bwd(input_dtype, lab.data<int64_t>(), g.data_ptr(), gs, gx.data_ptr(), s, ignore_index); },
        EMBER_ON_CUDA(cuda::nll_bwd(input_dtype, lab.data<int64_t>(), g.data_ptr(), gs, gx.data_ptr(), s,
                                    ignore_index, stream)));
    return {gx};
  }
  std::string name() const override { return "NllLossBackward"; }
  void release_saved() override {
    labels_.reset();
    count_.reset();
  }
};

// Runs a forward loss kernel that reports bad labels, and raises the error if one was found.
template <class CpuFn, class CudaFn>
void run_loss_kernel(const Tensor& x, const Tensor& lab, const LossShape& s, int64_t ignore_index,
                     const char* op, CpuFn cpu_fn, CudaFn cuda_fn) {
  (void)cuda_fn;  // unused in a build without CUDA
  on_device(
      x.device(), op,
      [&] {
        int64_t bad = s.rows();
        cpu_fn(&bad);
        check_bad_row(bad, lab, s, ignore_index, op);
      },
      EMBER_ON_CUDA(
          // bad[0]: the smallest bad row (rows() when none), lowered by the kernel; bad[1]: its
          // label. Both stay on the device until the next synchronization reports them (Note
          // [Deferred checks] in core/cuda_context.h); the kernels give bad rows loss 0.
          const int dev = x.device().index;
          Tensor bad = full({2}, double(s.rows()), {.dtype = DType::i64, .device = x.device()});
          cuda_fn(bad.data<int64_t>(), stream);
          cuda::resolve_bad_index(DType::i64, lab.data_ptr(), layout_of(lab), s.rows(), bad.data<int64_t>(), stream);
          cuda::defer_check(dev, stream, bad.data<int64_t>(), [op, s, ignore_index](int64_t row, int64_t label) {
            return bad_label_message(op, label, row, s, ignore_index);
          })));
}

}  // namespace

Tensor cross_entropy(const Tensor& logits_in, const Tensor& labels, Reduction reduction,
                     double label_smoothing, int64_t ignore_index) {
  auto [logits] = autocast::inputs(autocast::Op::cross_entropy, logits_in);
  const char* op = "cross_entropy";
  LossGeometry geo = loss_geometry(logits, labels, op);
  EMBER_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op,
              ": label_smoothing must be in [0, 1], got ", label_smoothing);
  Tensor x = contiguous_raw(logits), lab = labels_i64(labels);
  const LossShape& s = geo.s;
  DType acc = acc_dtype(x.dtype());
  TensorOptions ao{.dtype = acc, .device = x.device()};
  Tensor loss = empty({s.rows()}, ao), valid = empty({s.rows()}, ao), lse = empty({s.rows()}, ao);
  run_loss_kernel(
      x, lab, s, ignore_index, op,
      [&](int64_t* bad) {
        cpu::cross_entropy_fwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), loss.data_ptr(),
                               valid.data_ptr(), lse.data_ptr(), s, label_smoothing,
                               ignore_index, bad);
      },
      [&](int64_t* bad, auto stream) {
#if EMBER_WITH_CUDA
        cuda::cross_entropy_fwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), loss.data_ptr(),
                                valid.data_ptr(), lse.data_ptr(), s, label_smoothing,
                                ignore_index, bad, stream);
#endif
      });
  Tensor count;
  Tensor out = reduce_rows(loss, valid, reduction, geo.none_shape, x.dtype(), &count);
  if (auto node = autograd::make_node<CrossEntropyBackward>({logits})) {
    node->logits_ = x;
    node->labels_ = lab;
    node->lse_ = lse;
    node->count_ = count;
    node->s = s;
    node->reduction = reduction;
    node->smoothing = label_smoothing;
    node->ignore_index = ignore_index;
    autograd::set_history(out, node);
  }
  return out;
}

Tensor nll_loss(const Tensor& log_probs_in, const Tensor& labels, Reduction reduction,
                int64_t ignore_index) {
  auto [log_probs] = autocast::inputs(autocast::Op::nll_loss, log_probs_in);
  const char* op = "nll_loss";
  LossGeometry geo = loss_geometry(log_probs, labels, op);
  Tensor x = contiguous_raw(log_probs), lab = labels_i64(labels);
  const LossShape& s = geo.s;
  TensorOptions ao{.dtype = acc_dtype(x.dtype()), .device = x.device()};
  Tensor loss = empty({s.rows()}, ao), valid = empty({s.rows()}, ao);
  run_loss_kernel(
      x, lab, s, ignore_index, op,
      [&](int64_t* bad) {
        cpu::nll_fwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), loss.data_ptr(),
                     valid.data_ptr(), s, ignore_index, bad);
      },
      [&](int64_t* bad, auto stream) {
#if EMBER_WITH_CUDA
        cuda::nll_fwd(x.dtype(), x.data_ptr(), lab.data<int64_t>(), loss.data_ptr(),
                      valid.data_ptr(), s, ignore_index, bad, stream);
#endif
      });
  Tensor count;
  Tensor out = reduce_rows(loss, valid, reduction, geo.none_shape, x.dtype(), &count);
  if (auto node = autograd::make_node<NllLossBackward>({log_probs})) {
    node->labels_ = lab;
    node->count_ = count;
    node->s = s;
    node->input_shape = x.shape();
    node->input_dtype = x.dtype();
    node->reduction = reduction;
    node->ignore_index = ignore_index;
    autograd::set_history(out, node);
  }
  return out;
}

// A composition of differentiable ops (their kernels run on every device): its backward
// comes from theirs.
Tensor mse_loss(const Tensor& input_in, const Tensor& target_in, Reduction reduction) {
  auto [input, target] = autocast::inputs(autocast::Op::mse_loss, input_in, target_in);
  EMBER_CHECK(input.defined() && target.defined(), "mse_loss: undefined input or target");
  EMBER_CHECK(is_floating(input.dtype()), "mse_loss: expected a floating input, got ",
              input.dtype());
  // Shapes broadcast as in PyTorch (sub reports shapes that cannot).
  Tensor d = sub(input, target);
  Tensor sq = mul(d, d);
  switch (reduction) {
    case Reduction::none: return sq;
    case Reduction::sum: return sum(sq);
    case Reduction::mean: break;
  }
  return mean(sq);
}

}  // namespace ember
