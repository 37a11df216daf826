// matmul, mm, bmm, linear: NumPy/PyTorch semantics on top of one strided-batched GEMM.
// Note [GEMM without copies]: an operand whose last two dims have a unit stride on either
// side is passed to the GEMM as it is (a transposed view becomes a trans flag, a broadcast
// batch dim becomes a batch stride of 0); only other layouts are made contiguous.
#include <algorithm>
#include <utility>
#include <vector>

#include "autograd/autocast.h"
#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/dispatch.h"
#include "kernels/matmul.h"
#include "tensor/layout.h"

namespace ember {

namespace {

// How the (r, c) matrices of a (..., r, c) tensor read as a row-major GEMM operand.
struct MatView {
  bool ok = false;
  bool trans = false;  // stored as the (c, r) row-major transpose
  int64_t ld = 0;
};

MatView mat_view(const Tensor& t) {
  int64_t r = t.size(-2), c = t.size(-1), sr = t.stride(-2), sc = t.stride(-1);
  // Strides of size-1 dims are arbitrary: a single row or column fits either reading.
  if (c == 1 || sc == 1) {
    int64_t ld = r == 1 ? std::max<int64_t>(c, 1) : sr;
    if (ld >= std::max<int64_t>(c, 1)) return {true, false, ld};
  }
  if (r == 1 || sr == 1) {
    int64_t ld = c == 1 ? std::max<int64_t>(r, 1) : sc;
    if (ld >= std::max<int64_t>(r, 1)) return {true, true, ld};
  }
  return {};
}

// A contiguous copy outside the graph.
Tensor raw_contiguous(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = empty(t.shape(), {.dtype = t.dtype(), .device = t.device()});
  copy_into(out, t);
  return out;
}

// `t` itself when its matrices are GEMM-readable, else a contiguous copy.
Tensor gemm_ready(const Tensor& t) { return mat_view(t).ok ? t : raw_contiguous(t); }

// A view of `t` (..., r, c) with batch dims broadcast to `batch` (stride 0 where broadcast).
Tensor expand_batch(const Tensor& t, const Shape& batch) {
  int64_t nb = int64_t(batch.size()), tb = t.dim() - 2;
  Shape sizes(batch), strides(size_t(nb), 0);
  for (int64_t i = 0; i < tb; ++i) {
    int64_t d = nb - tb + i;
    if (t.size(i) != 1) strides[size_t(d)] = t.stride(i);
  }
  sizes.push_back(t.size(-2));
  sizes.push_back(t.size(-1));
  strides.push_back(t.stride(-2));
  strides.push_back(t.stride(-1));
  return make_view(t, sizes, strides, t.offset());
}

// The (c, r) transpose of the last two dims, as a view.
Tensor mT(const Tensor& t) {
  Shape sizes = t.shape(), strides = t.strides();
  std::swap(sizes[sizes.size() - 1], sizes[sizes.size() - 2]);
  std::swap(strides[strides.size() - 1], strides[strides.size() - 2]);
  return make_view(t, sizes, strides, t.offset());
}

// A view of `t` with its shape replaced by `shape` (same elements, t contiguous).
Tensor view_as_shape(const Tensor& t, const Shape& shape) {
  Tensor c = raw_contiguous(t);
  return make_view(c, shape, contiguous_strides(shape), c.offset());
}

// (R, c) rows of a (..., c) tensor: a view when the leading dims collapse, else a copy.
Tensor flatten_rows(const Tensor& t) {
  int64_t c = t.dim() == 0 ? 1 : t.size(-1);
  int64_t rows = c == 0 ? shape_numel(Shape(t.shape().begin(), t.shape().end() - 1))
                        : t.numel() / std::max<int64_t>(c, 1);
  if (t.dim() == 0) return view_as_shape(t, {1, 1});
  int64_t sc = t.stride(-1);
  bool ok = c == 1 || sc == 1;
  int64_t row_stride = std::max<int64_t>(c, 1), expect = -1;
  for (int64_t d = t.dim() - 2; d >= 0 && ok; --d) {
    if (t.size(d) == 1) continue;
    if (expect < 0) {
      row_stride = t.stride(d);
      ok = row_stride >= std::max<int64_t>(c, 1);
    } else {
      ok = t.stride(d) == expect;
    }
    expect = t.stride(d) * t.size(d);
  }
  if (!ok) return view_as_shape(t, {rows, c});
  return make_view(t, {rows, c}, {row_stride, c == 1 ? 1 : sc}, t.offset());
}

char* byte_ptr(const Tensor& t, int64_t elem_offset) {
  return static_cast<char*>(t.data_ptr()) + elem_offset * t.element_size();
}

void run_gemm(const Tensor& c, const void* a, const void* b, void* cp, const GemmParams& p) {
  on_device(
      c.device(), "matmul", [&] { cpu::gemm_strided_batched(c.dtype(), a, b, cp, p); },
      EMBER_ON_CUDA(cuda::gemm_strided_batched(c.dtype(), a, b, cp, p, stream)));
}

// c = alpha * a @ b + beta * c. a (batch..., m, k), b (batch..., k, n), c (batch..., m, n)
// with the same batch sizes (a and b may have stride 0 there) and GEMM-readable matrices
// (c not transposed).
void gemm_into(const Tensor& c, const Tensor& a, const Tensor& b, double alpha, double beta) {
  int64_t m = c.size(-2), n = c.size(-1), k = a.size(-1);
  if (c.numel() == 0) return;
  if (k == 0) {
    // Nothing to multiply: alpha * (empty sum) = 0.
    if (beta == 0.0) {
      Tensor(c).zero_();
    } else {
      EMBER_CHECK(beta == 1.0, "gemm: beta must be 0 or 1 when k == 0, got ", beta);
    }
    return;
  }
  MatView va = mat_view(a), vb = mat_view(b), vc = mat_view(c);
  EMBER_CHECK(va.ok && vb.ok && vc.ok && !vc.trans, "gemm: internal layout error");
  GemmParams p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.trans_a = va.trans;
  p.trans_b = vb.trans;
  p.lda = va.ld;
  p.ldb = vb.ld;
  p.ldc = vc.ld;
  p.alpha = alpha;
  p.beta = beta;

  struct BDim {
    int64_t size, sa, sb, sc;
  };
  std::vector<BDim> dims;
  for (int64_t d = 0; d < c.dim() - 2; ++d) {
    if (c.size(d) != 1) dims.push_back({c.size(d), a.stride(d), b.stride(d), c.stride(d)});
  }

  // Fold: when every batch entry uses the same B and the rows of A and C are evenly spaced
  // across the batch, the whole batch is one GEMM with batch*m rows (x @ W for 3-D x).
  bool b_shared = std::all_of(dims.begin(), dims.end(), [](const BDim& d) { return d.sb == 0; });
  if (!dims.empty() && b_shared && !va.trans) {
    auto row_stride = [&](bool is_a, int64_t cols, int64_t mat_row_stride) -> int64_t {
      std::vector<std::pair<int64_t, int64_t>> chain;  // (size, stride), outer to inner
      for (const BDim& d : dims) chain.push_back({d.size, is_a ? d.sa : d.sc});
      if (m > 1) chain.push_back({m, mat_row_stride});
      for (size_t i = 0; i + 1 < chain.size(); ++i)
        if (chain[i].second != chain[i + 1].second * chain[i + 1].first) return -1;
      int64_t rs = chain.back().second;
      return rs >= std::max<int64_t>(cols, 1) ? rs : -1;
    };
    int64_t rsa = row_stride(true, k, a.stride(-2)), rsc = row_stride(false, n, c.stride(-2));
    if (rsa > 0 && rsc > 0) {
      int64_t rows = m;
      for (const BDim& d : dims) rows *= d.size;
      p.m = rows;
      p.lda = rsa;
      p.ldc = rsc;
      run_gemm(c, a.data_ptr(), b.data_ptr(), c.data_ptr(), p);
      return;
    }
  }

  // Merge adjacent batch dims that collapse in all three operands; the innermost group is
  // one strided-batched call, the rest an outer loop.
  std::vector<BDim> merged;
  for (const BDim& d : dims) {
    if (!merged.empty()) {
      BDim& o = merged.back();
      if (o.sa == d.sa * d.size && o.sb == d.sb * d.size && o.sc == d.sc * d.size) {
        o = {o.size * d.size, d.sa, d.sb, d.sc};
        continue;
      }
    }
    merged.push_back(d);
  }
  BDim inner = merged.empty() ? BDim{1, 0, 0, 0} : merged.back();
  if (!merged.empty()) merged.pop_back();
  p.batch = inner.size;
  p.stride_a = inner.sa;
  p.stride_b = inner.sb;
  p.stride_c = inner.sc;
  int64_t outer = 1;
  for (const BDim& d : merged) outer *= d.size;
  std::vector<int64_t> idx(merged.size(), 0);
  for (int64_t o = 0; o < outer; ++o) {
    int64_t oa = 0, ob = 0, oc = 0;
    for (size_t i = 0; i < merged.size(); ++i) {
      oa += idx[i] * merged[i].sa;
      ob += idx[i] * merged[i].sb;
      oc += idx[i] * merged[i].sc;
    }
    run_gemm(c, byte_ptr(a, oa), byte_ptr(b, ob), byte_ptr(c, oc), p);
    for (int64_t i = int64_t(merged.size()) - 1; i >= 0; --i) {
      if (++idx[size_t(i)] < merged[size_t(i)].size) break;
      idx[size_t(i)] = 0;
    }
  }
}

void check_operands(const Tensor& a, const Tensor& b, const char* op) {
  EMBER_CHECK(a.defined() && b.defined(), op, ": undefined operand");
  EMBER_CHECK(a.device() == b.device(), op, ": operands on different devices: ", a.device(),
              " and ", b.device());
  EMBER_CHECK(a.dtype() == b.dtype(), op, ": operands of different dtypes: ", a.dtype(), " and ",
              b.dtype(), "; convert one with .to()");
  EMBER_CHECK(is_floating(a.dtype()), op, ": expected a floating dtype (f32, f64, f16, bf16), got ",
              a.dtype());
  check_device_available(a.device(), op);
}

// a (batch_a..., m, k) @ b (batch_b..., k, n) -> contiguous (batch..., m, n), not recorded.
Tensor bmm_raw(const Tensor& a, const Tensor& b) {
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(ba, bb);
  Shape out_shape = batch;
  out_shape.push_back(a.size(-2));
  out_shape.push_back(b.size(-1));
  Tensor out = empty(out_shape, {.dtype = a.dtype(), .device = a.device()});
  gemm_into(out, expand_batch(gemm_ready(a), batch), expand_batch(gemm_ready(b), batch), 1.0, 0.0);
  return out;
}

// 1-D operands as matrices: a (k) -> (1, k), b (k) -> (k, 1).
Tensor as_row(const Tensor& v) {
  return make_view(v, {1, v.size(0)}, {v.size(0) * v.stride(0), v.stride(0)}, v.offset());
}
Tensor as_col(const Tensor& v) { return make_view(v, {v.size(0), 1}, {v.stride(0), 1}, v.offset()); }

struct MatmulBackward : autograd::Node {
  autograd::SavedTensor a_, b_;
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor()};
    Tensor a = a_.unpack(*this), b = b_.unpack(*this);
    bool a1 = a.dim() == 1, b1 = b.dim() == 1;
    Tensor A = a1 ? as_row(a) : a, B = b1 ? as_col(b) : b;
    // The gradient with the promoted unit dims put back: (batch..., m, n).
    Shape ba(A.shape().begin(), A.shape().end() - 2), bb(B.shape().begin(), B.shape().end() - 2);
    Shape gshape = broadcast_shapes(ba, bb);
    gshape.push_back(A.size(-2));
    gshape.push_back(B.size(-1));
    Tensor G = g.shape() == gshape ? g : view_as_shape(g, gshape);
    Tensor ga, gb;
    if (next[0].valid()) {
      ga = autograd::sum_to(bmm_raw(G, mT(B)), A.shape());
      if (a1) ga = view_as_shape(ga, a.shape());
    }
    if (next[1].valid()) {
      if (B.dim() == 2 && A.dim() > 2) {
        // B is shared by the whole batch: one GEMM over all rows, no (batch, k, n) buffer.
        gb = bmm_raw(mT(flatten_rows(A)), flatten_rows(G));
      } else {
        gb = autograd::sum_to(bmm_raw(mT(A), G), B.shape());
      }
      if (b1) gb = view_as_shape(gb, b.shape());
    }
    return {ga, gb};
  }
  std::string name() const override { return "MatmulBackward"; }
  void release_saved() override {
    a_.reset();
    b_.reset();
  }
};

struct LinearBackward : autograd::Node {
  autograd::SavedTensor x_, w_;
  bool has_bias = false;
  TensorList apply(TensorList&& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor(), Tensor()};
    Tensor x = x_.unpack(*this), w = w_.unpack(*this);
    Tensor g2 = flatten_rows(g);  // (R, out)
    Tensor gx, gw, gb;
    if (next[0].valid()) gx = view_as_shape(bmm_raw(g2, gemm_ready(w)), x.shape());
    if (next[1].valid()) gw = bmm_raw(mT(g2), flatten_rows(x));  // (out, in), one GEMM
    if (has_bias && next[2].valid()) gb = sum(g2, {0});
    return {gx, gw, gb};
  }
  std::string name() const override { return "LinearBackward"; }
  void release_saved() override {
    x_.reset();
    w_.reset();
  }
};

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = autocast::inputs(autocast::Op::matmul, a_in, b_in);
  check_operands(a, b, "matmul");
  EMBER_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
              a.shape_str(), " and ", b.shape_str());
  bool a1 = a.dim() == 1, b1 = b.dim() == 1;
  Tensor A = a1 ? as_row(a) : a, B = b1 ? as_col(b) : b;
  EMBER_CHECK(A.size(-1) == B.size(-2), "matmul: shapes ", a.shape_str(), " and ", b.shape_str(),
              " cannot be multiplied (", A.size(-1), " columns vs ", B.size(-2), " rows)");
  Shape ba(A.shape().begin(), A.shape().end() - 2), bb(B.shape().begin(), B.shape().end() - 2);
  bool ok = true;
  for (size_t i = 0; i < std::min(ba.size(), bb.size()); ++i) {
    int64_t x = ba[ba.size() - 1 - i], y = bb[bb.size() - 1 - i];
    ok = ok && (x == y || x == 1 || y == 1);
  }
  EMBER_CHECK(ok, "matmul: batch dims of shapes ", a.shape_str(), " and ", b.shape_str(),
              " do not broadcast");
  Tensor out = bmm_raw(A, B);
  // Drop the unit dims that stood for 1-D operands.
  Shape shape(out.shape().begin(), out.shape().end() - 2);
  if (!a1) shape.push_back(A.size(-2));
  if (!b1) shape.push_back(B.size(-1));
  if (shape != out.shape()) out = make_view(out, shape, contiguous_strides(shape), 0);
  if (auto node = autograd::make_node<MatmulBackward>({a, b})) {
    node->a_ = a;
    node->b_ = b;
    autograd::set_history(out, node);
  }
  return out;
}

Tensor mm(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = autocast::inputs(autocast::Op::mm, a_in, b_in);
  check_operands(a, b, "mm");
  EMBER_CHECK(a.dim() == 2 && b.dim() == 2, "mm: expected two 2-D tensors, got ", a.shape_str(),
              " and ", b.shape_str());
  return matmul(a, b);
}

Tensor bmm(const Tensor& a_in, const Tensor& b_in) {
  auto [a, b] = autocast::inputs(autocast::Op::bmm, a_in, b_in);
  check_operands(a, b, "bmm");
  EMBER_CHECK(a.dim() == 3 && b.dim() == 3, "bmm: expected two 3-D tensors, got ", a.shape_str(),
              " and ", b.shape_str());
  EMBER_CHECK(a.size(0) == b.size(0), "bmm: batch sizes differ: ", a.shape_str(), " and ",
              b.shape_str());
  return matmul(a, b);
}

Tensor Tensor::matmul(const Tensor& other) const { return ember::matmul(*this, other); }

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& b_in) {
  auto [x, w, b] = autocast::inputs(autocast::Op::linear, x_in, w_in, b_in);
  check_operands(x, w, "linear");
  EMBER_CHECK(w.dim() == 2, "linear: weight must be 2-D (out, in), got ", w.shape_str());
  EMBER_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ", x.shape_str(),
              " does not match weight ", w.shape_str(), " (expected last dim ", w.size(1), ")");
  if (b.defined()) {
    check_operands(x, b, "linear");
    EMBER_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias ", b.shape_str(),
                " does not match weight ", w.shape_str(), " (expected [", w.size(0), "])");
  }
  Tensor x2 = gemm_ready(flatten_rows(x));  // (R, in)
  Tensor out2 = empty({x2.size(0), w.size(0)}, {.dtype = x.dtype(), .device = x.device()});
  if (b.defined()) copy_into(out2, b);  // rows start as the bias; the GEMM adds x @ w^T
  gemm_into(out2, x2, mT(gemm_ready(w)), 1.0, b.defined() ? 1.0 : 0.0);
  Shape shape(x.shape().begin(), x.shape().end() - 1);
  shape.push_back(w.size(0));
  Tensor out = make_view(out2, shape, contiguous_strides(shape), 0);
  if (auto node = autograd::make_node<LinearBackward>({x, w, b})) {
    node->x_ = x;
    node->w_ = w;
    node->has_bias = b.defined();
    autograd::set_history(out, node);
  }
  return out;
}

}  // namespace ember
