// f32 convolutions through oneDNN (kernels/cpu/conv_dnnl.h). Compiled only when the build
// has oneDNN (EMBER_WITH_DNNL; CMakeLists.txt drops */dnnl/*.cpp otherwise).
#include <omp.h>

#include <array>
#include <atomic>
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "kernels/cpu/conv_dnnl.h"

namespace ember::cpu {

// Note [oneDNN convolutions]
// What: f32 NCHW convolutions (forward with optional bias, backward-data, backward-weights
// with the bias gradient) run by oneDNN 2.6 (Debian's libdnnl, the library PyTorch's CPU
// convolutions come from) over ember's ConvGeometry and raw pointers, with the contract of
// cpu::conv2d_fwd / conv2d_bwd. Why: it has JIT AVX-512/AVX2 direct kernels for blocked
// layouts and Winograd F(4,3), the algorithms ember's own CPU path lacks; which backend wins
// which shape is measured in bench/results/2026-12-01-cpu-onednn.md, and the per-shape
// chooser in conv.cpp decides. Nothing calls this by default: EMBER_CPU_CONV_BACKEND=dnnl
// forces it for every f32 convolution, EMBER_CPU_CONV_BACKEND=measured for the shapes
// where it won (dnnl_conv_wins), through a hook at the top of conv2d_fwd / conv2d_bwd.
//
// How:
//  - One CPU engine for the process. Each calling thread has its own stream (a stream is
//    not meant to be shared by threads that execute at the same time).
//  - Creating a primitive descriptor and its JIT code costs milliseconds, so each pass's
//    primitive, its reorders and its scratchpad size are made once per key and cached in a
//    map under a mutex: the geometry, the pass, bias or not, the DnnlConvConfig, and the
//    thread count. oneDNN's OpenMP build bakes the thread count (omp_get_max_threads, or 1
//    inside a parallel region) into a primitive descriptor when it is created, so a
//    primitive must run with the count it was made for.
//  - Layout (DnnlConvConfig::blocked, the default): the primitives are created on
//    format_tag::any memory, so oneDNN picks its blocked layouts (nChw16c activations,
//    OIhw16i16o-like weights on AVX-512), and ember's NCHW/OIHW buffers are reordered into
//    temporaries before and out of them after each primitive. Given plain nchw/oihw memory
//    instead, oneDNN 2.6 falls back to its im2col + GEMM implementation (gemm:jit), which
//    measured 1.1-7.7x slower than blocked + reorders on ResNet-20's layers (all but the
//    stem's backward-data). Backward runs the reorder of gy once when both passes want the
//    same layout.
//  - Memory: temporaries and the scratchpad (scratchpad_mode::user, so concurrent calls
//    never share oneDNN's internal one) come from ember's CPU caching allocator.
//  - Threading: libdnnl2 is built with OpenMP (it links libgomp, like ember), so it runs on
//    ember's own OpenMP team and uses omp_get_max_threads() threads; nested inside a parallel
//    region, one.
//  - Rounding: strict f32 (fpmath_mode stays strict: no bf16 down-conversion). Winograd
//    (DnnlConvConfig::winograd) trades more rounding for fewer multiplications.
//  - Determinism: at a fixed thread count a primitive gives the same bits run to run. Across
//    thread counts it does not: the weight gradient (and sometimes the bias gradient) is
//    reduced over the batch in per-thread pieces, and even the Winograd forward and
//    backward-data can change (measured with oneDNN 2.6.3 on AVX-512:
//    1 vs 2 threads differed in backward-weights on most ResNet shapes, in Winograd forward
//    on 64 channels at 8x8; direct forward and backward-data matched everywhere tried, but
//    oneDNN promises nothing there). So dnnl_conv_deterministic() is false, and
//    deterministic mode keeps ember's own kernels (Note [Thread-count-independent sums] in
//    conv.cpp); the forward hook takes deterministic mode from blas_pinned().

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

/// Threads a primitive made now will run with (oneDNN's own rule for its OpenMP build).
int current_threads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

using Pass = DnnlConvPass;

/// One argument of a primitive: ember's plain layout and the primitive's own, with the
/// reorder between them when they differ (to the primitive for inputs, back for outputs).
struct Arg {
  int id = 0;  // DNNL_ARG_*
  memory::desc user, inner;
  bool output = false;
  dnnl::reorder reorder;  // empty when user == inner
};

/// One pass: the primitive, its arguments and its scratchpad size.
struct Plan {
  dnnl::primitive prim;
  std::vector<Arg> args;
  size_t scratchpad = 0;
  std::string impl;  // oneDNN's name for the implementation it chose
};

using Key = std::array<int64_t, 19>;

Key make_key(const ConvGeometry& g, Pass p, bool bias, const DnnlConvConfig& c, int threads) {
  return {g.n,  g.c_in, g.h,  g.w,  g.c_out,    g.kh,       g.kw,     g.oh,          g.ow,   g.sh,
          g.sw, g.ph,   g.pw, g.dh, g.dw,       g.groups,   int64_t(p),
          int64_t(bias) | int64_t(c.blocked) << 1 | int64_t(c.winograd) << 2, threads};
}

/// The descriptors of one geometry, in ember's layouts and in the primitives' (`any`).
struct Descs {
  memory::desc x, w, y, b;            // ember's: nchw, oihw (goihw with groups), x
  memory::desc x_any, w_any, y_any;   // what the primitive is created on
  memory::dims strides, dilates, pad_l, pad_r;

  Descs(const ConvGeometry& g, const DnnlConvConfig& c) {
    const memory::dims xd{g.n, g.c_in, g.h, g.w}, yd{g.n, g.c_out, g.oh, g.ow};
    const memory::dims wd = g.groups == 1
                                ? memory::dims{g.c_out, g.c_in, g.kh, g.kw}
                                : memory::dims{g.groups, g.c_out / g.groups, g.c_in / g.groups, g.kh, g.kw};
    const tag wtag = g.groups == 1 ? tag::oihw : tag::goihw;
    x = memory::desc(xd, dt::f32, tag::nchw);
    y = memory::desc(yd, dt::f32, tag::nchw);
    w = memory::desc(wd, dt::f32, wtag);
    b = memory::desc({g.c_out}, dt::f32, tag::x);
    x_any = c.blocked ? memory::desc(xd, dt::f32, tag::any) : x;
    y_any = c.blocked ? memory::desc(yd, dt::f32, tag::any) : y;
    w_any = c.blocked ? memory::desc(wd, dt::f32, tag::any) : w;
    strides = {g.sh, g.sw};
    dilates = {g.dh - 1, g.dw - 1};  // oneDNN counts the gaps: 0 is a dense kernel
    pad_l = {g.ph, g.pw};
    // Symmetric padding as ember's geometry has it; oneDNN checks
    // (h - kernel_extent + pad_l + pad_r) / stride + 1 == oh with the same floor as ember.
    pad_r = {g.ph, g.pw};
  }
};

dnnl::algorithm algorithm(const DnnlConvConfig& c) {
  return c.winograd ? dnnl::algorithm::convolution_auto : dnnl::algorithm::convolution_direct;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

Arg make_arg(int id, const memory::desc& user, const memory::desc& inner, bool output) {
  Arg a{id, user, inner, output, {}};
  if (!(user == inner)) {
    a.reorder = output ? dnnl::reorder(dnnl::reorder::primitive_desc(engine(), inner, engine(), user))
                       : dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), inner));
  }
  return a;
}

dnnl::convolution_forward::primitive_desc fwd_pd(const Descs& d, bool bias, const DnnlConvConfig& c) {
  using F = dnnl::convolution_forward;
  const auto pk = dnnl::prop_kind::forward_training;
  F::desc desc = bias ? F::desc(pk, algorithm(c), d.x_any, d.w_any, d.b, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r)
                      : F::desc(pk, algorithm(c), d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r);
  return F::primitive_desc(desc, user_scratchpad(), engine());
}

Plan make_plan(const ConvGeometry& g, Pass pass, bool bias, const DnnlConvConfig& c) {
  const Descs d(g, c);
  Plan p;
  // The forward descriptor is also the hint the backward passes are made from.
  const auto fpd = fwd_pd(d, bias && pass == Pass::fwd, c);
  if (pass == Pass::fwd) {
    p.prim = dnnl::convolution_forward(fpd);
    p.args = {make_arg(DNNL_ARG_SRC, d.x, fpd.src_desc(), false),
              make_arg(DNNL_ARG_WEIGHTS, d.w, fpd.weights_desc(), false),
              make_arg(DNNL_ARG_DST, d.y, fpd.dst_desc(), true)};
    if (bias) p.args.push_back(make_arg(DNNL_ARG_BIAS, d.b, fpd.bias_desc(), false));
    p.scratchpad = fpd.scratchpad_desc().get_size();
    p.impl = fpd.impl_info_str();
  } else if (pass == Pass::bwd_data) {
    using B = dnnl::convolution_backward_data;
    B::desc desc(algorithm(c), d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r);
    B::primitive_desc pd(desc, user_scratchpad(), engine(), fpd);
    p.prim = B(pd);
    p.args = {make_arg(DNNL_ARG_DIFF_DST, d.y, pd.diff_dst_desc(), false),
              make_arg(DNNL_ARG_WEIGHTS, d.w, pd.weights_desc(), false),
              make_arg(DNNL_ARG_DIFF_SRC, d.x, pd.diff_src_desc(), true)};
    p.scratchpad = pd.scratchpad_desc().get_size();
    p.impl = pd.impl_info_str();
  } else {
    using B = dnnl::convolution_backward_weights;
    B::desc desc = bias ? B::desc(algorithm(c), d.x_any, d.w_any, d.b, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r)
                        : B::desc(algorithm(c), d.x_any, d.w_any, d.y_any, d.strides, d.dilates, d.pad_l, d.pad_r);
    B::primitive_desc pd(desc, user_scratchpad(), engine(), fpd);
    p.prim = B(pd);
    p.args = {make_arg(DNNL_ARG_DIFF_DST, d.y, pd.diff_dst_desc(), false),
              make_arg(DNNL_ARG_SRC, d.x, pd.src_desc(), false),
              make_arg(DNNL_ARG_DIFF_WEIGHTS, d.w, pd.diff_weights_desc(), true)};
    if (bias) p.args.push_back(make_arg(DNNL_ARG_DIFF_BIAS, d.b, pd.diff_bias_desc(), true));
    p.scratchpad = pd.scratchpad_desc().get_size();
    p.impl = pd.impl_info_str();
  }
  return p;
}

std::mutex g_mutex;
std::map<Key, Plan>* g_plans = nullptr;  // under g_mutex; never freed (oneDNN outlives exit order)
std::atomic<int64_t> g_primitives{0};

/// The cached plan for this pass (a copy: oneDNN handles are reference counted).
Plan plan_for(const ConvGeometry& g, Pass pass, bool bias) {
  const DnnlConvConfig c = dnnl_conv_config();
  const Key k = make_key(g, pass, bias, c, current_threads());
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_plans) g_plans = new std::map<Key, Plan>();
  auto it = g_plans->find(k);
  if (it == g_plans->end()) {
    Plan p;
    try {
      p = make_plan(g, pass, bias, c);
    } catch (const dnnl::error& e) {
      const char* what = pass == Pass::fwd ? "forward" : pass == Pass::bwd_data ? "backward-data" : "backward-weights";
      EMBER_THROW("conv2d (oneDNN): cannot create the ", what, " primitive for x (", g.n, ", ", g.c_in, ", ", g.h, ", ", g.w, "), w (", g.c_out, ", ",
                  g.c_in / g.groups, ", ", g.kh, ", ", g.kw, "), groups ", g.groups, ": ", e.what());
    }
    int64_t made = 1;
    for (const Arg& a : p.args) made += a.reorder ? 1 : 0;
    g_primitives += made;
    it = g_plans->emplace(k, std::move(p)).first;
  }
  return it->second;
}

/// CPU memory from ember's caching allocator for the scope of one call.
struct Buffer {
  void* ptr = nullptr;
  explicit Buffer(size_t n) {
    if (n > 0) ptr = allocator_for(kCPU).allocate(n);
  }
  ~Buffer() {
    if (ptr) allocator_for(kCPU).deallocate(ptr);
  }
  Buffer(Buffer&& o) noexcept : ptr(o.ptr) { o.ptr = nullptr; }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

/// Inputs already reordered in this call (backward reorders gy once for both passes).
struct Reordered {
  const void* user;
  memory::desc inner;
  memory mem;
};

/// Runs one plan on ember's buffers: reorders the inputs that need it, executes, reorders
/// the outputs back. `ptrs` holds ember's pointer for each of the plan's arguments.
void run(const Plan& p, const std::map<int, const void*>& ptrs, std::vector<Reordered>& memo,
         std::vector<Buffer>& keep) {
  dnnl::stream& s = stream();
  std::unordered_map<int, memory> args;
  std::vector<std::pair<memory, memory>> back;  // (inner, user) outputs to reorder after
  std::vector<const dnnl::reorder*> back_reorders;
  for (const Arg& a : p.args) {
    void* user = const_cast<void*>(ptrs.at(a.id));
    memory um(a.user, engine(), user);
    if (!a.reorder) {
      args.emplace(a.id, um);
      continue;
    }
    if (!a.output) {
      bool found = false;
      for (const Reordered& r : memo) {
        if (r.user == user && r.inner == a.inner) {
          args.emplace(a.id, r.mem);
          found = true;
          break;
        }
      }
      if (found) continue;
    }
    keep.emplace_back(a.inner.get_size());
    memory im(a.inner, engine(), keep.back().ptr);
    if (a.output) {
      back.emplace_back(im, um);
      back_reorders.push_back(&a.reorder);
    } else {
      a.reorder.execute(s, um, im);
      memo.push_back({user, a.inner, im});
    }
    args.emplace(a.id, im);
  }
  Buffer scratch(p.scratchpad);
  if (p.scratchpad > 0) {
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(memory::desc({int64_t(p.scratchpad)}, dt::u8, tag::x), engine(), scratch.ptr));
  }
  p.prim.execute(s, args);
  for (size_t i = 0; i < back.size(); ++i) back_reorders[i]->execute(s, back[i].first, back[i].second);
  s.wait();
}

void check_geometry(const ConvGeometry& g) {
  EMBER_CHECK(g.groups >= 1 && g.c_in % g.groups == 0 && g.c_out % g.groups == 0,
              "conv2d (oneDNN): ", g.c_in, " input and ", g.c_out, " output channels do not split into ",
              g.groups, " groups");
  EMBER_CHECK(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1 && g.ph >= 0 && g.pw >= 0 && g.kh >= 1 && g.kw >= 1,
              "conv2d (oneDNN): bad stride (", g.sh, ", ", g.sw, "), dilation (", g.dh, ", ", g.dw, "), padding (",
              g.ph, ", ", g.pw, ") or kernel (", g.kh, ", ", g.kw, ")");
  const int64_t oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  const int64_t ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  EMBER_CHECK(oh == g.oh && ow == g.ow, "conv2d (oneDNN): output ", g.oh, "x", g.ow, " does not match input ", g.h,
              "x", g.w, " (expected ", oh, "x", ow, ")");
}

template <class F>
void with_dnnl_errors(const char* what, F&& f) {
  try {
    f();
  } catch (const dnnl::error& e) {
    EMBER_THROW(what, " (oneDNN): ", e.what());
  }
}

}  // namespace

bool dnnl_conv_supported(DType dtype, const ConvGeometry& g) {
  return dtype == DType::f32 && g.n > 0 && g.c_in > 0 && g.c_out > 0 && g.h > 0 && g.w > 0 && g.oh > 0 && g.ow > 0;
}

bool dnnl_conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y, const ConvGeometry& g) {
  if (!dnnl_conv_supported(dtype, g)) return false;
  check_geometry(g);
  EMBER_CHECK(x && w && y, "conv2d (oneDNN): null input, weight or output");
  with_dnnl_errors("conv2d", [&] {
    const Plan p = plan_for(g, Pass::fwd, b != nullptr);
    std::vector<Reordered> memo;
    std::vector<Buffer> keep;
    run(p, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}}, memo, keep);
  });
  return true;
}

bool dnnl_conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw, void* gb,
                     const ConvGeometry& g) {
  if (!dnnl_conv_supported(dtype, g)) return false;
  check_geometry(g);
  EMBER_CHECK(gy && (!gx || w) && (!gw || x), "conv2d backward (oneDNN): null gradient, weight or input");
  with_dnnl_errors("conv2d backward", [&] {
    std::vector<Reordered> memo;  // gy in the primitives' layout, shared by both passes
    std::vector<Buffer> keep;
    if (gw) {
      const Plan p = plan_for(g, Pass::bwd_weights, gb != nullptr);
      run(p, {{DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_WEIGHTS, gw}, {DNNL_ARG_DIFF_BIAS, gb}},
          memo, keep);
    } else if (gb) {
      // Only the bias gradient: the sum of gy over images and pixels.
      const float* gyf = static_cast<const float*>(gy);
      float* gbf = static_cast<float*>(gb);
      const int64_t hw = g.oh * g.ow;
      for (int64_t c = 0; c < g.c_out; ++c) {
        double s = 0;
        for (int64_t n = 0; n < g.n; ++n) {
          const float* r = gyf + (n * g.c_out + c) * hw;
          for (int64_t i = 0; i < hw; ++i) s += r[i];
        }
        gbf[c] = float(s);
      }
    }
    if (gx) {
      const Plan p = plan_for(g, Pass::bwd_data, false);
      run(p, {{DNNL_ARG_DIFF_DST, gy}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, gx}}, memo, keep);
    }
  });
  return true;
}

bool dnnl_conv_deterministic() { return false; }

std::string dnnl_conv_implementation(const ConvGeometry& g, DnnlConvPass pass, bool bias) {
  if (!dnnl_conv_supported(DType::f32, g)) return {};
  check_geometry(g);
  return plan_for(g, pass, bias && pass != Pass::bwd_data).impl;
}

int64_t dnnl_conv_cached_primitives() { return g_primitives; }

}  // namespace ember::cpu
