// CPU threading defaults (Note [One thread pool]): ember's worker threads (core/thread_pool.h)
// are the one pool for ember's loops, OpenBLAS runs on the calling thread, and idle OpenMP
// threads (oneDNN's) sleep instead of spinning.
#include "kernels/cpu/threads.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>

namespace ember::cpu {

// Note [One thread pool]
// With no environment set, the Debian OpenBLAS (pthread build) starts its own pool of one
// thread per core next to ember's OpenMP team, and libgomp's idle threads spin for a while
// after each parallel region. On a two-core machine both pools then fight for the same cores,
// and a spinning thread holds its core while the thread the region waits for has none: a LeNet
// step ran 20-40x slower than with OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive
// (bench/results/2026-12-01-cpu-threads.md). So, unless the user set them:
//  - OpenBLAS on one thread: large single GEMMs are split over ember's own workers instead
//    (kernels/cpu/matmul.cpp), convolutions spread whole images over them (conv.cpp).
//  - OMP_WAIT_POLICY=passive: idle OpenMP threads sleep on a futex instead of spinning.
//    ember's own loops no longer run on libgomp's team but on core/thread_pool.h's workers,
//    which poll briefly and yield their core (Note [Spinning workers]); libgomp's team is
//    left to oneDNN's convolutions, and the thread count is still OpenMP's.
// libgomp reads OMP_WAIT_POLICY once, in its own ELF constructor, which runs before any
// constructor of the program: a setenv from a C++ static initializer is too late, and one
// from the executable's .preinit_array (which does run first) is lost too, because libc's
// own initializer, run after it, resets `environ` to the original array. What works: the
// .preinit_array entry sees the environment as its third argument and, when neither
// OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, re-executes
// /proc/self/exe once with OMP_WAIT_POLICY=passive (and OPENBLAS_NUM_THREADS=1 when no BLAS
// thread count is set) added, before any library has initialized, so nothing runs twice but
// the loader (about a millisecond). EMBER_THREAD_DEFAULTS marks the second start and lists
// what ember added; ember's ordinary initializer then removes those variables again, so
// child processes see the user's environment. Setting EMBER_THREAD_DEFAULTS (to anything,
// e.g. 0) turns the re-exec off; so does LD_PRELOAD (valgrind, sanitizer runtimes).
// The hook (kernels/cpu/thread_defaults.cpp) is compiled into ember's own programs only
// (the apps, tests and benchmarks), never into the library: a library must not re-execute
// the program that embeds it. Elsewhere only the BLAS cap applies, through
// openblas_set_num_threads at load; an embedding program sets OMP_WAIT_POLICY itself, or
// compiles that file in.
// An explicit OMP_WAIT_POLICY, GOMP_SPINCOUNT, OPENBLAS_NUM_THREADS or GOTO_NUM_THREADS wins.

namespace {

constexpr const char* kMarker = "EMBER_THREAD_DEFAULTS";

// Constant-initialized (no dynamic initializer runs over them after the preinit hook).
constinit bool g_blas_pinned = false;

bool env_set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

// What the re-exec added ("w": OMP_WAIT_POLICY, "b": OPENBLAS_NUM_THREADS); read before
// the variables are removed.
struct Added {
  bool wait = false, blas = false;
};
const Added& added() {
  static const Added a = [] {
    Added r;
    const char* m = std::getenv(kMarker);
    if (m && std::strcmp(m, "0") != 0) {
      r.wait = std::strchr(m, 'w') != nullptr;
      r.blas = std::strchr(m, 'b') != nullptr;
    }
    return r;
  }();
  return a;
}

bool user_set_blas_threads() {
  return !added().blas && (env_set("OPENBLAS_NUM_THREADS") || env_set("GOTO_NUM_THREADS"));
}

struct Init {
  Init() {
    const Added& a = added();
    blas_default_threads();
    if (a.wait || a.blas) {
      if (a.wait) unsetenv("OMP_WAIT_POLICY");
      if (a.blas) unsetenv("OPENBLAS_NUM_THREADS");
      unsetenv(kMarker);
    }
  }
};
Init g_init;

}  // namespace

int blas_default_threads() {
  static const int n = [] {
    if (!user_set_blas_threads()) openblas_set_num_threads(1);
    return openblas_get_num_threads();
  }();
  return n;
}

bool wait_policy_set_by_ember() { return added().wait; }

bool blas_pinned() { return g_blas_pinned; }

void set_blas_single_threaded(bool on) {
  const int initial = blas_default_threads();
  g_blas_pinned = on;
  openblas_set_num_threads(on ? 1 : initial);
}

}  // namespace ember::cpu
