#pragma once
// CPU threading defaults: Note [One thread pool] in kernels/cpu/threads.cpp.

namespace ember::cpu {

/// OpenBLAS's thread count outside deterministic mode: 1 (ember's OpenMP team does the
/// parallel work) unless the user set OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS.
int blas_default_threads();

/// Whether ember chose OMP_WAIT_POLICY=passive for this process (the user had set neither
/// OMP_WAIT_POLICY nor GOMP_SPINCOUNT, and the build has the preinit hook).
bool wait_policy_set_by_ember();

/// Whether deterministic mode holds every GEMM on one thread (set_blas_single_threaded(true)).
bool blas_pinned();

}  // namespace ember::cpu
