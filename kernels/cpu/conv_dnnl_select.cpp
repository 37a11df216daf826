// The switches around the oneDNN convolutions (kernels/cpu/conv_dnnl.h): the configuration,
// forcing by environment, and the hook conv.cpp calls. Built with and without oneDNN; the
// oneDNN calls themselves are in kernels/cpu/dnnl/conv_dnnl.cpp (left out of a build
// without it, when the stubs below stand in).
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/cpu/conv_dnnl.h"

namespace ember::cpu {

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

/// One of two spellings of a switch, or `fallback` when unset or empty.
bool env_choice(const char* name, const char* on, const char* off, bool fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  if (v == on) return true;
  if (v == off) return false;
  EMBER_THROW(name, "=", v, " is not understood: use `", on, "` or `", off, "`");
}

CpuConvBackend backend_from_env() {
  const std::string v = env("EMBER_CPU_CONV_BACKEND");
  if (v.empty() || v == "ember") return CpuConvBackend::ember;
  EMBER_CHECK(v == "dnnl" || v == "measured", "EMBER_CPU_CONV_BACKEND=", v,
              " is not understood: use `ember` (the default), `dnnl` or `measured`");
  EMBER_CHECK(EMBER_WITH_DNNL, "EMBER_CPU_CONV_BACKEND=", v,
              ", but this build of ember has no oneDNN: install libdnnl-dev (scripts/setup.sh) "
              "and reconfigure with EMBER_DNNL=AUTO or ON");
  return v == "dnnl" ? CpuConvBackend::dnnl : CpuConvBackend::measured;
}

struct State {
  std::atomic<bool> blocked, winograd;
  std::atomic<CpuConvBackend> backend;
  State() {
    const DnnlConvConfig d;
    blocked = env_choice("EMBER_DNNL_CONV_LAYOUT", "blocked", "plain", d.blocked);
    winograd = env_choice("EMBER_DNNL_CONV_ALGO", "auto", "direct", d.winograd);
    backend = backend_from_env();
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

DnnlConvConfig dnnl_conv_config() {
  return DnnlConvConfig{.blocked = state().blocked, .winograd = state().winograd};
}

void set_dnnl_conv_config(const DnnlConvConfig& c) {
  state().blocked = c.blocked;
  state().winograd = c.winograd;
}

CpuConvBackend cpu_conv_backend() { return state().backend; }

void set_cpu_conv_backend(CpuConvBackend b) {
  EMBER_CHECK(b == CpuConvBackend::ember || EMBER_WITH_DNNL,
              "set_cpu_conv_backend: this build of ember has no oneDNN");
  state().backend = b;
}

bool dnnl_conv_wins(const ConvGeometry& g) {
  if (!EMBER_WITH_DNNL || g.groups != 1) return false;
  const bool strided = g.sh > 1 || g.sw > 1;
  return g.kh * g.kw > 1 && (g.c_in >= 32 || (g.c_in >= 16 && strided));
}

bool use_dnnl_conv(DType dtype, const ConvGeometry& g, bool deterministic) {
  const CpuConvBackend b = cpu_conv_backend();
  if (!EMBER_WITH_DNNL || b == CpuConvBackend::ember) return false;
  if (deterministic && !dnnl_conv_deterministic()) return false;
  if (b == CpuConvBackend::measured && !dnnl_conv_wins(g)) return false;
  return dnnl_conv_supported(dtype, g);
}

#if !EMBER_WITH_DNNL
bool dnnl_conv_supported(DType, const ConvGeometry&) { return false; }
bool dnnl_conv2d_fwd(DType, const void*, const void*, const void*, void*, const ConvGeometry&) {
  return false;
}
bool dnnl_conv2d_bwd(DType, const void*, const void*, const void*, void*, void*, void*,
                     const ConvGeometry&) {
  return false;
}
bool dnnl_conv_deterministic() { return false; }
int64_t dnnl_conv_cached_primitives() { return 0; }
std::string dnnl_conv_implementation(const ConvGeometry&, DnnlConvPass, bool) { return {}; }
#endif

}  // namespace ember::cpu
