#pragma once
// CPU loop helpers: large ranges split over ember's worker threads (core/thread_pool.h),
// strided iteration row by row.
#include <algorithm>
#include <cstdint>

#include "core/strided_layout.h"
#include "core/thread_pool.h"

namespace ember::cpu {

/// Below this many elements a loop runs on one thread (thread start-up costs more).
inline constexpr int64_t kParallelGrain = 32768;

/// f(begin, end) over [0, n), split across the worker threads when n is large.
template <class F>
void parallel_for(int64_t n, F&& f, int64_t grain = kParallelGrain) {
  const int nt = parallel_threads();
  if (n <= grain || nt == 1) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  const int64_t chunks = std::min<int64_t>(nt, ceil_div(n, grain));
  parallel_tasks(int(chunks), int(chunks), [&](int c) {
    const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
    if (b < e) f(b, e);
  });
}

/// Visits the n elements of NL operands that share sizes (layouts[k] gives operand k's
/// strides): f(offsets, count, inner_strides) is called per run of the innermost dim,
/// with element offsets of the run's first element for each operand.
template <int NL, class F>
void strided_rows(int64_t n, const StridedLayout* const (&ls)[NL], F&& f) {
  const StridedLayout& l0 = *ls[0];
  if (l0.ndim == 0) {
    int64_t offs[NL] = {}, st[NL] = {};
    f(offs, int64_t(1), st);
    return;
  }
  int64_t inner = l0.sizes[l0.ndim - 1];
  if (inner == 0) return;
  int64_t rows = n / inner;
  int64_t st[NL];
  for (int k = 0; k < NL; ++k) st[k] = ls[k]->strides[ls[k]->ndim - 1];
  int64_t grain = std::max<int64_t>(1, kParallelGrain / inner);
  parallel_for(rows, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r) {
      int64_t offs[NL];
      for (int k = 0; k < NL; ++k) offs[k] = ls[k]->offset_of(r * inner);
      int64_t stc[NL];
      for (int k = 0; k < NL; ++k) stc[k] = st[k];
      f(offs, inner, stc);
    }
  }, grain);
}

}  // namespace ember::cpu
