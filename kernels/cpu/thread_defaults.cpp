// The .preinit_array hook of Note [One thread pool] (kernels/cpu/threads.cpp): re-executes
// the program once with OMP_WAIT_POLICY=passive (and OPENBLAS_NUM_THREADS=1) when the user
// set no wait policy. Compiled into ember's own executables only (apps, tests, benchmarks;
// see CMakeLists.txt), never into the library.
#include <alloca.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace {

constexpr const char* kMarker = "EMBER_THREAD_DEFAULTS";

// Whether envp holds NAME=<something>; before libc's initializer getenv cannot be used.
const char* envp_value(char** envp, const char* name) {
  const size_t len = std::strlen(name);
  for (char** e = envp; e && *e; ++e) {
    if (std::strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  }
  return nullptr;
}

bool envp_set(char** envp, const char* name) {
  const char* v = envp_value(envp, name);
  return v != nullptr && *v != '\0';
}

void preinit(int argc, char** argv, char** envp) {
  if (argc < 1 || argv == nullptr || envp_value(envp, kMarker) != nullptr ||
      envp_value(envp, "LD_PRELOAD") != nullptr || envp_set(envp, "OMP_WAIT_POLICY") ||
      envp_set(envp, "GOMP_SPINCOUNT")) {
    return;
  }
  const bool add_blas = !envp_set(envp, "OPENBLAS_NUM_THREADS") && !envp_set(envp, "GOTO_NUM_THREADS");
  size_t n = 0;
  while (envp[n]) ++n;
  char** env = static_cast<char**>(alloca((n + 4) * sizeof(char*)));
  size_t k = 0;
  for (size_t i = 0; i < n; ++i) {
    // Drop empty settings of the variables ember adds (a repeated name is ambiguous).
    if (std::strcmp(envp[i], "OMP_WAIT_POLICY=") == 0 || std::strcmp(envp[i], "GOMP_SPINCOUNT=") == 0 ||
        (add_blas && (std::strcmp(envp[i], "OPENBLAS_NUM_THREADS=") == 0 ||
                      std::strcmp(envp[i], "GOTO_NUM_THREADS=") == 0))) {
      continue;
    }
    env[k++] = envp[i];
  }
  env[k++] = const_cast<char*>("OMP_WAIT_POLICY=passive");
  if (add_blas) env[k++] = const_cast<char*>("OPENBLAS_NUM_THREADS=1");
  env[k++] = const_cast<char*>(add_blas ? "EMBER_THREAD_DEFAULTS=wb" : "EMBER_THREAD_DEFAULTS=w");
  env[k] = nullptr;
  execve("/proc/self/exe", argv, env);
  // Failed (no /proc, ...): carry on with libgomp's default wait policy.
}

}  // namespace

__attribute__((section(".preinit_array"), used)) void (*const ember_preinit_entry)(int, char**, char**) = preinit;
