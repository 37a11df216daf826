// CPU binary elementwise ops and where(): a flat loop when operands are contiguous or
// scalars, otherwise row by row over the coalesced strided layout.
#include "kernels/binary_math.h"
#include "kernels/cpu/loops.h"
#include "core/error.h"

namespace ember::cpu {

namespace {
bool is_scalar(const StridedLayout& l) {
  for (int d = 0; d < l.ndim; ++d)
    if (l.strides[d] != 0 && l.sizes[d] != 1) return false;
  return true;
}

template <BinaryOp OP, class T>
void run(const T* a, const StridedLayout& la, const T* b, const StridedLayout& lb,
         binary_out_t<OP, T>* out, int64_t n, double alpha_d) {
  using C = compute_t<T>;
  using O = binary_out_t<OP, T>;
  const C alpha = C(alpha_d);
  auto f = [alpha](C x, C y) { return O(binary_apply<OP, C>(x, y, alpha)); };
  bool ca = la.is_contiguous(), cb = lb.is_contiguous();
  if (ca && cb) {
    parallel_for(n, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = f(C(a[i]), C(b[i]));
    });
  } else if (ca && is_scalar(lb)) {
    const C y = C(b[0]);
    parallel_for(n, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = f(C(a[i]), y);
    });
  } else if (is_scalar(la) && cb) {
    const C x = C(a[0]);
    parallel_for(n, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) out[i] = f(x, C(b[i]));
    });
  } else {
    StridedLayout lo = la;  // out: contiguous over the same sizes
    int64_t acc = 1;
    for (int d = lo.ndim - 1; d >= 0; --d) {
      lo.strides[d] = acc;
      acc *= lo.sizes[d];
    }
    const StridedLayout* ls[3] = {&la, &lb, &lo};
    strided_rows<3>(n, ls, [&](const int64_t* off, int64_t cnt, const int64_t* st) {
      const T* pa = a + off[0];
      const T* pb = b + off[1];
      O* po = out + off[2];
      for (int64_t i = 0; i < cnt; ++i) po[i] = f(C(pa[i * st[0]]), C(pb[i * st[1]]));
    });
  }
}
}  // namespace

void binary(BinaryOp op, DType dtype, const void* a, const StridedLayout& la, const void* b,
            const StridedLayout& lb, void* out, int64_t n, double alpha) {
  if (n == 0) return;
  EMBER_DISPATCH_NUMERIC(dtype, binary_name(op), [&] {
    using T = scalar_t;
    EMBER_BINARY_SWITCH(op, [&] {
      run<kOp, T>(static_cast<const T*>(a), la, static_cast<const T*>(b), lb,
                  static_cast<binary_out_t<kOp, T>*>(out), n, alpha);
    });
  });
}

void where(DType dtype, const bool* cond, const StridedLayout& lc, const void* a,
           const StridedLayout& la, const void* b, const StridedLayout& lb, void* out, int64_t n) {
  if (n == 0) return;
  EMBER_DISPATCH_ALL(dtype, "where", [&] {
    using T = scalar_t;
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    T* po = static_cast<T*>(out);
    StridedLayout lo = lc;
    int64_t acc = 1;
    for (int d = lo.ndim - 1; d >= 0; --d) {
      lo.strides[d] = acc;
      acc *= lo.sizes[d];
    }
    const StridedLayout* ls[4] = {&lc, &la, &lb, &lo};
    strided_rows<4>(n, ls, [&](const int64_t* off, int64_t cnt, const int64_t* st) {
      for (int64_t i = 0; i < cnt; ++i)
        po[off[3] + i * st[3]] = cond[off[0] + i * st[0]] ? pa[off[1] + i * st[1]] : pb[off[2] + i * st[2]];
    });
  });
}

}  // namespace ember::cpu

namespace ember {
const char* binary_name(BinaryOp op) {
  switch (op) {
    case BinaryOp::add: return "add";
    case BinaryOp::sub: return "sub";
    case BinaryOp::mul: return "mul";
    case BinaryOp::div: return "div";
    case BinaryOp::pow: return "pow";
    case BinaryOp::maximum: return "maximum";
    case BinaryOp::minimum: return "minimum";
    case BinaryOp::eq: return "eq";
    case BinaryOp::ne: return "ne";
    case BinaryOp::lt: return "lt";
    case BinaryOp::le: return "le";
    case BinaryOp::gt: return "gt";
    case BinaryOp::ge: return "ge";
    case BinaryOp::relu_bwd: return "relu_backward";
    case BinaryOp::sigmoid_bwd: return "sigmoid_backward";
    case BinaryOp::tanh_bwd: return "tanh_backward";
  }
  return "?";
}
}  // namespace ember
