// CPU reductions over (outer, r, inner): rows reduced with independent lanes (vectorizable,
// and more accurate than one running sum), columns reduced with the inner dim vectorized.
#include <algorithm>
#include <vector>

#include "kernels/cpu/loops.h"
#include "kernels/reduce_math.h"
#include "core/error.h"

namespace ember {

const char* reduce_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::mean: return "mean";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
    case ReduceOp::argmax: return "argmax";
    case ReduceOp::argmin: return "argmin";
  }
  return "?";
}

DType reduce_out_dtype(ReduceOp op, DType in) {
  if (op == ReduceOp::argmax || op == ReduceOp::argmin) return DType::i64;
  if ((op == ReduceOp::sum || op == ReduceOp::mean) && is_integral(in)) return DType::i64;
  return in;
}

}  // namespace ember

namespace ember::cpu {

namespace {
/// Pairwise summation over blocks of 8 independent lanes: the rounding error grows with
/// log(n) rather than n, and the inner loop vectorizes.
template <class T, class A>
A pairwise_sum(const T* x, int64_t n) {
  if (n > 2048) {
    int64_t h = (n / 2) / 8 * 8;
    return pairwise_sum<T, A>(x, h) + pairwise_sum<T, A>(x + h, n - h);
  }
  constexpr int L = 8;
  A lane[L] = {};
  int64_t j = 0;
  for (; j + L <= n; j += L)
    for (int l = 0; l < L; ++l) lane[l] += A(x[j + l]);
  A s = 0;
  for (int l = 0; l < L; ++l) s += lane[l];
  for (; j < n; ++j) s += A(x[j]);
  return s;
}

template <ReduceOp OP, class T, class A>
ReduceAcc<A> reduce_row(const T* x, int64_t r, int64_t stride, int64_t base_index) {
  if constexpr (OP == ReduceOp::sum || OP == ReduceOp::mean) {
    if (stride == 1) return {pairwise_sum<T, A>(x, r), 0};
  }
  ReduceAcc<A> acc = reduce_identity<OP, A>();
  for (int64_t j = 0; j < r; ++j) acc = reduce_combine<OP, A>(acc, {A(x[j * stride]), base_index + j});
  return acc;
}

template <ReduceOp OP, class T, class O>
void run(const T* in, O* out, int64_t outer, int64_t r, int64_t inner) {
  using A = acc_t<T>;
  auto finish = [r](ReduceAcc<A> a) -> O {
    if constexpr (OP == ReduceOp::argmax || OP == ReduceOp::argmin) {
      return O(a.i < 0 ? 0 : a.i);
    } else if constexpr (OP == ReduceOp::mean) {
      return O(r > 0 ? A(a.v / A(r)) : A(NAN));
    } else {
      return O(a.v);
    }
  };
  if (inner == 1 && outer == 1) {
    // One long row: split it into chunks, reduce them on the threads, then combine the
    // partials in chunk order. The chunks depend on the length alone, not on the thread
    // count, so the rounding does not either (Note [Thread-count-independent sums]).
    int64_t chunks = std::clamp<int64_t>(r / kParallelGrain, 1, 64);
    std::vector<ReduceAcc<A>> part(size_t(chunks), reduce_identity<OP, A>());
    parallel_for(chunks, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        int64_t b = r * c / chunks, e = r * (c + 1) / chunks;
        part[size_t(c)] = reduce_row<OP, T, A>(in + b, e - b, 1, b);
      }
    }, 1);
    ReduceAcc<A> acc = reduce_identity<OP, A>();
    for (auto& p : part) acc = reduce_combine<OP, A>(acc, p);
    out[0] = finish(acc);
    return;
  }
  if (inner == 1) {
    parallel_for(outer, [&](int64_t ob, int64_t oe) {
      for (int64_t o = ob; o < oe; ++o) out[o] = finish(reduce_row<OP, T, A>(in + o * r, r, 1, 0));
    }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r, 1)));
    return;
  }
  // Columns: accumulate whole rows of `inner` at a time (contiguous, vectorizable).
  parallel_for(outer * inner, [&](int64_t b, int64_t e) {
    std::vector<ReduceAcc<A>> acc;
    int64_t pos = b;
    while (pos < e) {
      int64_t o = pos / inner, i0 = pos % inner;
      int64_t i1 = std::min(inner, i0 + (e - pos));
      acc.assign(size_t(i1 - i0), reduce_identity<OP, A>());
      const T* base = in + o * r * inner;
      for (int64_t j = 0; j < r; ++j) {
        const T* row = base + j * inner;
        for (int64_t i = i0; i < i1; ++i) acc[size_t(i - i0)] = reduce_combine<OP, A>(acc[size_t(i - i0)], {A(row[i]), j});
      }
      for (int64_t i = i0; i < i1; ++i) out[o * inner + i] = finish(acc[size_t(i - i0)]);
      pos += i1 - i0;
    }
  }, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r, 1)));
}
}  // namespace

void reduce(ReduceOp op, DType in_dtype, const void* in, void* out, int64_t outer, int64_t r,
            int64_t inner) {
  DType od = reduce_out_dtype(op, in_dtype);
  EMBER_DISPATCH_ALL(in_dtype, reduce_name(op), [&] {
    using T = scalar_t;
    const T* x = static_cast<const T*>(in);
    EMBER_REDUCE_SWITCH(op, [&] {
      if (od == DType::i64) {
        run<kOp, T, int64_t>(x, static_cast<int64_t*>(out), outer, r, inner);
      } else {
        run<kOp, T, T>(x, static_cast<T*>(out), outer, r, inner);
      }
    });
  });
}

}  // namespace ember::cpu
