// CPU convolution: the dispatcher. Each f32 pass (forward, input gradient, weight gradient)
// runs one of four algorithms, chosen per shape (Note [Choosing a CPU convolution
// algorithm]): the direct AVX2 kernels (kernels/cpu/conv_direct.h), im2col + GEMM per image
// or batched over images (kernels/cpu/conv_gemm.h), Winograd F(4x4, 3x3)
// (kernels/cpu/conv_winograd.h). f64 always runs im2col + GEMM per image, the exact path.
// Images are spread over ember's worker threads (core/thread_pool.h), each running single-threaded GEMMs on its own
// buffers (small GEMMs thread badly inside BLAS). BLAS is on one thread by default anyway
// (Note [One thread pool] in kernels/cpu/threads.cpp); a user-set OPENBLAS_NUM_THREADS
// threads the GEMMs of a convolution too small to spread.
#include <cblas.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/strided_layout.h"
#include "core/thread_pool.h"
#include "kernels/conv.h"
#include "kernels/cpu/conv_direct.h"
#include "kernels/cpu/conv_dnnl.h"
#include "kernels/cpu/conv_gemm.h"
#include "kernels/cpu/conv_winograd.h"

namespace ember::cpu {

namespace {

/// Sets OpenBLAS's thread count for a scope: 1 while our own threads each run GEMMs.
class BlasThreads {
 public:
  explicit BlasThreads(int n) : prev_(openblas_get_num_threads()) {
    if (prev_ != n) openblas_set_num_threads(n);
  }
  ~BlasThreads() {
    if (openblas_get_num_threads() != prev_) openblas_set_num_threads(prev_);
  }
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int prev_;
};

/// Sum of n contiguous values in 8 interleaved partial sums: a single running sum is one
/// long chain of dependent adds (4 cycles each) that the compiler may not reorder.
template <class T>
T sum_contiguous(const T* r, int64_t n) {
  T part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) part[k] += r[i + k];
  for (; i < n; ++i) part[i % 8] += r[i];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/// Below this many multiply-adds a convolution runs on one thread: waking threads costs
/// more, and much more on a loaded machine.
constexpr int64_t kMinParallelMacs = int64_t(1) << 20;

int64_t macs(const ConvGeometry& g) {
  return g.n * g.c_out * g.oh * g.ow * (g.c_in / g.groups) * g.kh * g.kw;
}

/// Threads to spread the images over (1: all images on this thread, where BLAS threads only
/// if the user gave it threads).
int threads_for(const ConvGeometry& g) {
  const int nt = parallel_threads();
  if (g.n < 2 || nt < 2 || macs(g) < kMinParallelMacs) return 1;
  return int(std::min<int64_t>(nt, g.n));
}

/// Runs f(thread, image_begin, image_end) over the batch: one block of images per thread
/// with single-threaded BLAS, or all images on this thread with threaded BLAS.
template <class F>
void over_images(const ConvGeometry& g, F&& f) {
  const int64_t n = g.n;
  int nt = threads_for(g);
  if (nt > 1) {
    BlasThreads one(1);
    parallel_tasks(nt, nt, [&](int t) { f(t, n * t / nt, n * (t + 1) / nt); });
  } else {
    f(0, int64_t(0), n);
  }
}

// Note [Thread-count-independent sums]: the weight and bias gradients are sums over the
// images, kept as one partial sum per block of images and added in block order. By
// default a block is one thread's share of the batch, so the rounding depends on the
// thread count. In deterministic mode (ember::set_deterministic) the blocks depend on the
// batch size alone (kDeterministicBlocks of them at most), the threads take whole blocks,
// and BLAS runs on one thread inside them: the result is bitwise the same at any thread
// count, for the price of a few more partial buffers. The forward and input-gradient
// passes run over the same fixed blocks there, so that the batched and Winograd GEMMs,
// whose blocks of images start at a range's first image, see the same blocks too.
constexpr int64_t kDeterministicBlocks = 8;

/// f(block, image_begin, image_end) over `blocks` fixed blocks of the batch, spread over the
/// threads that threads_for gives, each with single-threaded BLAS.
template <class F>
void over_fixed_blocks(const ConvGeometry& g, int64_t blocks, F&& f) {
  const int64_t n = g.n;
  const int nt = int(std::min<int64_t>(threads_for(g), blocks));
  BlasThreads one(1);
  parallel_tasks(int(blocks), nt, [&](int b) { f(b, n * b / blocks, n * (b + 1) / blocks); });
}

int64_t deterministic_blocks(const ConvGeometry& g) { return std::max<int64_t>(1, std::min(g.n, kDeterministicBlocks)); }

/// The partition a pass runs over: fixed blocks (deterministic) or one range per thread.
/// Returns the number of partial sums f's first argument indexes.
template <class F>
int over(const ConvGeometry& g, bool deterministic, F&& f) {
  if (deterministic) {
    const int64_t blocks = deterministic_blocks(g);
    over_fixed_blocks(g, blocks, f);
    return int(blocks);
  }
  over_images(g, f);
  return threads_for(g);
}

int partials(const ConvGeometry& g, bool deterministic) {
  return deterministic ? int(deterministic_blocks(g)) : threads_for(g);
}

// ---- the algorithms, one pass each, f32

bool eligible(ConvAlgo a, ConvPass p, const ConvGeometry& g) {
  switch (a) {
    case ConvAlgo::direct:
      return p == ConvPass::fwd          ? direct::eligible(g)
             : p == ConvPass::grad_input ? direct::eligible_grad_input(g)
                                         : direct::eligible_grad_weight(g);
    case ConvAlgo::im2col: return true;
    case ConvAlgo::batched: return gemm_conv::batched_eligible(g);
    case ConvAlgo::winograd:
      return p == ConvPass::fwd          ? winograd::eligible(g)
             : p == ConvPass::grad_input ? winograd::eligible_grad_input(g)
                                         : false;
    // oneDNN (Note [oneDNN convolutions]) in builds that have it; never in deterministic
    // mode (run_chosen), since its sums depend on the thread count.
    case ConvAlgo::dnnl: return dnnl_conv_supported(DType::f32, g);
    case ConvAlgo::automatic: return false;
  }
  return false;
}

void fwd_f32(ConvAlgo a, const float* x, const float* w, const float* b, float* y, const ConvGeometry& g,
             bool det) {
  switch (a) {
    case ConvAlgo::direct: {
      const std::vector<float> wr = direct::fwd_weights(w, g);
      over(g, det, [&](int, int64_t nb, int64_t ne) {
        direct::Workspace ws(g);
        direct::fwd(x, wr.data(), b, y, g, nb, ne, ws);
      });
      return;
    }
    case ConvAlgo::batched:
      over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::fwd_batched(x, w, b, y, g, nb, ne); });
      return;
    case ConvAlgo::winograd: {
      const float* u = winograd::transform_weights(w, g);
      over(g, det, [&](int, int64_t nb, int64_t ne) { winograd::fwd(x, u, b, y, g, nb, ne); });
      return;
    }
    case ConvAlgo::dnnl:
      dnnl_conv2d_fwd(DType::f32, x, w, b, y, g);  // on the whole OpenMP team itself
      return;
    default:
      over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::fwd_images(x, w, b, y, g, nb, ne); });
  }
}

void grad_input_f32(ConvAlgo a, const float* w, const float* gy, float* gx, const ConvGeometry& g, bool det) {
  switch (a) {
    case ConvAlgo::direct: {
      // The input gradient of a stride-1 convolution is the convolution of gy with the
      // flipped, transposed weights (Note [Direct convolution]).
      const ConvGeometry gt = direct::grad_input_geometry(g);
      const std::vector<float> wf = direct::fwd_weights(direct::grad_input_weights(w, g).data(), gt);
      over(g, det, [&](int, int64_t nb, int64_t ne) {
        direct::Workspace ws(gt);
        direct::fwd(gy, wf.data(), nullptr, gx, gt, nb, ne, ws);
      });
      return;
    }
    case ConvAlgo::batched:
      over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::grad_input_batched(w, gy, gx, g, nb, ne); });
      return;
    case ConvAlgo::winograd: {
      const ConvGeometry gt = direct::grad_input_geometry(g);
      const float* u = winograd::transform_weights(direct::grad_input_weights(w, g).data(), gt);
      over(g, det, [&](int, int64_t nb, int64_t ne) { winograd::fwd(gy, u, nullptr, gx, gt, nb, ne); });
      return;
    }
    case ConvAlgo::dnnl:
      dnnl_conv2d_bwd(DType::f32, nullptr, w, gy, gx, nullptr, nullptr, g);
      return;
    default:
      over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::grad_input_images(w, gy, gx, g, nb, ne); });
  }
}

/// Adds image n's bias gradient (sums of gy over each output plane) to gb.
template <class T>
void add_bias_grad(const T* gy, T* gb, const ConvGeometry& g, int64_t n) {
  const int64_t ohw = g.oh * g.ow;
  for (int64_t c = 0; c < g.c_out; ++c) gb[c] += sum_contiguous(gy + (n * g.c_out + c) * ohw, ohw);
}

/// gw (C_out, K) and gb (either may be null) overwritten: partial sums per thread or fixed
/// block, added in order. The bias gradient rides along in the same parallel region, image
/// by image right after the weight gradient's pass over it (gy still in cache).
template <class T>
void grad_weight_run(ConvAlgo a, const T* x, const T* gy, T* gw, T* gb, const ConvGeometry& g, bool det) {
  if constexpr (std::is_same_v<T, float>) {
    if (a == ConvAlgo::dnnl) {
      dnnl_conv2d_bwd(DType::f32, x, nullptr, gy, nullptr, gw, gb, g);
      return;
    }
  }
  const int64_t wsize = g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
  const int np = partials(g, det);
  std::vector<T> part(gw ? size_t(np * wsize) : 0, T(0));
  std::vector<T> part_b(gb ? size_t(np * g.c_out) : 0, T(0));
  over(g, det, [&](int t, int64_t nb, int64_t ne) {
    T* pb = gb ? part_b.data() + t * g.c_out : nullptr;
    if (!gw) {
      for (int64_t n = nb; n < ne; ++n) add_bias_grad(gy, pb, g, n);
      return;
    }
    T* pt = part.data() + t * wsize;
    // Per image or per GEMM block, so that the bias sums read gy while it is in cache; the
    // direct kernel takes the whole range (it keeps chunks of images in flight itself).
    const bool f32 = std::is_same_v<T, float>;
    const int64_t step = f32 && a == ConvAlgo::direct    ? std::max<int64_t>(1, ne - nb)
                         : f32 && a == ConvAlgo::batched ? gemm_conv::batched_block(g)
                                                         : 1;
    for (int64_t n = nb; n < ne; n += step) {
      const int64_t m = std::min(ne, n + step);
      if constexpr (std::is_same_v<T, float>) {
        if (a == ConvAlgo::direct) direct::grad_weight(x, gy, pt, g, n, m);
        else if (a == ConvAlgo::batched) gemm_conv::grad_weight_batched(x, gy, pt, g, n, m);
        else gemm_conv::grad_weight_images(x, gy, pt, g, n, m);
      } else {
        gemm_conv::grad_weight_images(x, gy, pt, g, n, m);
      }
      if (pb)
        for (int64_t i = n; i < m; ++i) add_bias_grad(gy, pb, g, i);
    }
  });
  if (gw) {
    for (int t = 1; t < np; ++t)
      for (int64_t i = 0; i < wsize; ++i) part[size_t(i)] += part[size_t(t * wsize + i)];
    const bool transposed = !std::is_same_v<T, float> || (a != ConvAlgo::direct && a != ConvAlgo::batched);
    if (transposed) gemm_conv::transpose_weight_blocks(part.data(), gw, g);
    else std::copy(part.begin(), part.begin() + wsize, gw);
  }
  if (gb) {
    std::copy(part_b.begin(), part_b.begin() + g.c_out, gb);
    for (int t = 1; t < np; ++t)
      for (int64_t c = 0; c < g.c_out; ++c) gb[c] += part_b[size_t(t * g.c_out + c)];
  }
}

// ---- choosing

// Note [Choosing a CPU convolution algorithm]: which algorithm is fastest depends on the
// shape, the pass and the machine: the direct kernels win where channel counts are small
// and the rows fill their tiles (LeNet, ResNet-20's 16-channel stage), Winograd where both
// channel counts are large enough for its 36 GEMMs to dwarf the transforms, the batched
// GEMMs on small maps with many channels and for strided convolutions, per-image im2col
// where a single image's GEMM is already large. Rather than a rule tuned on one machine,
// the first call of each (shape, pass, thread count) times every eligible algorithm on the
// real buffers, keeps the fastest in a mutex-guarded map and runs it from then on: the
// pattern of cuDNN's Find (kernels/cudnn/conv.cpp). The first step of a model pays for
// the search (each candidate once, or kShortRuns times when a run is short: about 3-5
// steps' worth of convolution time).
//
// Noise: the very first run of a shape pays for cold caches, page faults on a fresh output
// and waking the thread team, so one untimed run of the rule's pick comes first. On a
// loaded machine a run can be preempted, which only ever makes it slower, so each
// candidate's time is the minimum of its runs; and a candidate replaces the fixed
// rule's pick only when it is more than kMargin faster. Two processes (a run and its
// resumption from a checkpoint) then pick the same algorithms unless a shape sits near the
// margin and the machine is very loaded, and close calls cost at most kMargin. Exact
// reproducibility across processes is what deterministic mode is for.
//
// Deterministic mode must give the same bits on every run and at every thread count, and
// a pick by timing could differ from one run to the next. There the pick is a fixed rule
// of the geometry alone (fixed_rule below, written from the measured picks in
// bench/results/2026-12-01-cpu-conv.md), and the passes run over fixed blocks of images
// (Note [Thread-count-independent sums]). A forced algorithm (set_conv_algo,
// EMBER_CPU_CONV_ALGO) applies to every pass it is eligible for, in both modes.
constexpr double kRetimeBelow = 0.1;  // seconds: runs shorter than this are repeated,
constexpr int kShortRuns = 3;          // up to this many times
constexpr double kMargin = 0.1;

ConvAlgo fixed_rule(ConvPass p, const ConvGeometry& g) {
  // The smaller channel count of the pass's convolution; the measured picks (1 and 2
  // threads, ResNet-20/18 and LeNet at batch 128/64): direct up to 32 channels, Winograd
  // from 64 for the forward and input-gradient convolutions; the weight gradient direct on
  // large maps, batched GEMMs on maps of 16x16 and less; strided ones batched or im2col.
  const int64_t ch = std::min(g.c_in, g.c_out), ohw = g.oh * g.ow;
  if (p == ConvPass::grad_weight) {
    if (eligible(ConvAlgo::direct, p, g) && (ch <= 32 || ohw > 256)) return ConvAlgo::direct;
  } else {
    if (eligible(ConvAlgo::direct, p, g) && ch <= 32) return ConvAlgo::direct;
    if (eligible(ConvAlgo::winograd, p, g) && ch >= 64) return ConvAlgo::winograd;
  }
  if (eligible(ConvAlgo::batched, p, g) && ohw <= 256) return ConvAlgo::batched;
  return ConvAlgo::im2col;
}

ConvAlgo algo_from_env() {
  const char* e = std::getenv("EMBER_CPU_CONV_ALGO");
  return e && *e ? parse_conv_algo(e) : ConvAlgo::automatic;
}

std::atomic<ConvAlgo>& forced() {
  static std::atomic<ConvAlgo> a{algo_from_env()};
  return a;
}

std::atomic<ConvAlgo> g_last[3] = {ConvAlgo::automatic, ConvAlgo::automatic, ConvAlgo::automatic};

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("EMBER_CPU_CONV_VERBOSE");
    return e && *e && std::string(e) != "0";
  }();
  return v;
}

const char* pass_name(ConvPass p) {
  return p == ConvPass::fwd ? "fwd" : p == ConvPass::grad_input ? "grad_input" : "grad_weight";
}

using Key = std::array<int64_t, 20>;
struct Choice {
  ConvAlgo algo;
  std::string line;  // the report line
};
std::mutex g_choices_mutex;
std::map<Key, Choice>& choices() {
  static std::map<Key, Choice> m;
  return m;
}

Key key_of(const ConvGeometry& g, ConvPass p) {
  const int threads = parallel_threads();
  return {g.n, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.oh, g.ow, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.groups,
          int64_t(p), threads, openblas_get_num_threads(), 0};
}

std::string describe(const ConvGeometry& g, ConvPass p, int threads) {
  std::ostringstream s;
  s << "n" << g.n << " " << g.c_in << "x" << g.h << "x" << g.w << " -> " << g.c_out << "x" << g.oh << "x" << g.ow
    << " k" << g.kh << "x" << g.kw << " s" << g.sh << " p" << g.ph;
  if (g.dh != 1 || g.dw != 1) s << " d" << g.dh << "x" << g.dw;
  if (g.groups != 1) s << " groups" << g.groups;
  s << " " << pass_name(p) << " threads=" << threads;
  return s.str();
}

/// Runs pass p of g with the algorithm chosen for it: run(algo) computes the pass.
template <class Run>
void run_chosen(ConvPass p, const ConvGeometry& g, bool det, Run&& run) {
  auto go = [&](ConvAlgo a) {
    g_last[int(p)] = a;
    run(a);
  };
  const ConvAlgo f = forced().load();
  if (f != ConvAlgo::automatic && eligible(f, p, g) && !(det && f == ConvAlgo::dnnl && !dnnl_conv_deterministic()))
    return go(f);
  if (det) return go(fixed_rule(p, g));
  const Key key = key_of(g, p);
  {
    std::lock_guard<std::mutex> lock(g_choices_mutex);
    auto it = choices().find(key);
    // An imported pick this machine cannot run is measured again.
    if (it != choices().end() && eligible(it->second.algo, p, g)) return go(it->second.algo);
  }
  std::vector<ConvAlgo> cands;
  for (ConvAlgo a : {ConvAlgo::direct, ConvAlgo::im2col, ConvAlgo::batched, ConvAlgo::winograd, ConvAlgo::dnnl})
    if (eligible(a, p, g)) cands.push_back(a);
  const ConvAlgo rule = fixed_rule(p, g);
  ConvAlgo best = cands.front(), last = best;
  double best_s = 1e300, rule_s = 1e300;
  std::ostringstream line;
  line << describe(g, p, int(key[17])) << ":";
  run(rule);  // warm-up (Noise above)
  for (ConvAlgo a : cands) {
    double t = 1e300;
    for (int rep = 0; rep < kShortRuns; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      run(a);
      t = std::min(t, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      if (t >= kRetimeBelow || cands.size() == 1) break;
    }
    last = a;
    line << " " << conv_algo_name(a) << " " << t * 1e3 << " ms";
    if (t < best_s) best_s = t, best = a;
    if (a == rule) rule_s = t;
  }
  if (best != rule && best_s > (1 - kMargin) * rule_s) best = rule;  // a close call: the rule's pick
  line << " -> " << conv_algo_name(best);
  if (verbose()) std::fprintf(stderr, "ember conv: %s\n", line.str().c_str());
  {
    std::lock_guard<std::mutex> lock(g_choices_mutex);
    choices().insert_or_assign(key, Choice{best, line.str()});
  }
  g_last[int(p)] = best;
  if (last != best) run(best);  // the output from the algorithm every later call uses
}

template <class T>
void fwd(const T* x, const T* w, const T* b, T* y, const ConvGeometry& g, bool det) {
  if constexpr (std::is_same_v<T, float>) {
    run_chosen(ConvPass::fwd, g, det, [&](ConvAlgo a) { fwd_f32(a, x, w, b, y, g, det); });
  } else {
    over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::fwd_images(x, w, b, y, g, nb, ne); });
  }
}

template <class T>
void bwd(const T* x, const T* w, const T* gy, T* gx, T* gw, T* gb, const ConvGeometry& g, bool det) {
  if (gx) {
    if constexpr (std::is_same_v<T, float>) {
      run_chosen(ConvPass::grad_input, g, det, [&](ConvAlgo a) { grad_input_f32(a, w, gy, gx, g, det); });
    } else {
      over(g, det, [&](int, int64_t nb, int64_t ne) { gemm_conv::grad_input_images(w, gy, gx, g, nb, ne); });
    }
  }
  if (gw) {
    if constexpr (std::is_same_v<T, float>) {
      run_chosen(ConvPass::grad_weight, g, det, [&](ConvAlgo a) { grad_weight_run(a, x, gy, gw, gb, g, det); });
    } else {
      grad_weight_run(ConvAlgo::im2col, x, gy, gw, gb, g, det);
    }
  } else if (gb) {
    grad_weight_run(ConvAlgo::im2col, x, gy, static_cast<T*>(nullptr), gb, g, det);
  }
}

}  // namespace

void set_conv_algo(ConvAlgo a) { forced() = a; }
ConvAlgo conv_algo() { return forced().load(); }

const char* conv_algo_name(ConvAlgo a) {
  switch (a) {
    case ConvAlgo::automatic: return "auto";
    case ConvAlgo::direct: return "direct";
    case ConvAlgo::im2col: return "im2col";
    case ConvAlgo::batched: return "batched";
    case ConvAlgo::winograd: return "winograd";
    case ConvAlgo::dnnl: return "dnnl";
  }
  return "?";
}

ConvAlgo parse_conv_algo(std::string_view name) {
  for (ConvAlgo a : {ConvAlgo::automatic, ConvAlgo::direct, ConvAlgo::im2col, ConvAlgo::batched, ConvAlgo::winograd,
                     ConvAlgo::dnnl})
    if (name == conv_algo_name(a)) return a;
  EMBER_THROW("EMBER_CPU_CONV_ALGO / conv algorithm: expected auto, direct, im2col, batched, winograd or dnnl, got '",
              std::string(name), "'");
}

ConvAlgo last_conv_algo(ConvPass p) { return g_last[int(p)].load(); }

std::string conv_algo_choices() {
  std::lock_guard<std::mutex> lock(g_choices_mutex);
  std::string r;
  for (const auto& [k, c] : choices()) r += c.line + "\n";
  return r;
}

void clear_conv_algo_choices() {
  std::lock_guard<std::mutex> lock(g_choices_mutex);
  choices().clear();
}

// Note [Algorithm choices travel with the run]: a pick made by timing can differ between
// two processes on a loaded machine (Noise, Note [Choosing a CPU convolution algorithm]),
// and different algorithms round differently. So the Trainer saves the picks with every
// checkpoint and with the best weights, and a resumed run or an --evaluate imports them
// before its first convolution: it runs the very algorithms the first process ran, and
// resume stays exact bit for bit. The text is one line per key: its 20 integers, then
// the algorithm's name.
std::string export_conv_algo_choices() {
  std::lock_guard<std::mutex> lock(g_choices_mutex);
  std::ostringstream s;
  for (const auto& [k, c] : choices()) {
    for (int64_t v : k) s << v << ' ';
    s << conv_algo_name(c.algo) << '\n';
  }
  return s.str();
}

void import_conv_algo_choices(const std::string& text) {
  std::vector<std::pair<Key, ConvAlgo>> parsed;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::istringstream ls(line);
    Key k{};
    for (int64_t& v : k)
      EMBER_CHECK(bool(ls >> v), "conv algorithm choices: line ", n, " has fewer than ", k.size(), " numbers: '", line,
                  "'");
    std::string name, extra;
    EMBER_CHECK(bool(ls >> name) && !(ls >> extra), "conv algorithm choices: line ", n,
                " must end with one algorithm name: '", line, "'");
    const ConvAlgo a = parse_conv_algo(name);
    EMBER_CHECK(a != ConvAlgo::automatic && k[16] >= 0 && k[16] <= 2, "conv algorithm choices: line ", n,
                " is not a pick of a pass: '", line, "'");
    parsed.emplace_back(k, a);
  }
  std::lock_guard<std::mutex> lock(g_choices_mutex);
  for (const auto& [k, a] : parsed)
    choices().insert_or_assign(k, Choice{a, std::string("imported: ") + conv_algo_name(a)});
}

void conv2d_fwd(DType dtype, const void* x, const void* w, const void* b, void* y, const ConvGeometry& g,
                bool deterministic) {
  // A forced oneDNN backend (EMBER_CPU_CONV_BACKEND=dnnl|measured, for benchmarks); by
  // default oneDNN is one of the chooser's candidates instead (ConvAlgo::dnnl).
  if (use_dnnl_conv(dtype, g, deterministic) && dnnl_conv2d_fwd(dtype, x, w, b, y, g)) return;
  switch (dtype) {
    case DType::f32:
      fwd(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<const float*>(b),
          static_cast<float*>(y), g, deterministic);
      break;
    case DType::f64:
      fwd(static_cast<const double*>(x), static_cast<const double*>(w), static_cast<const double*>(b),
          static_cast<double*>(y), g, deterministic);
      break;
    default: EMBER_THROW("conv2d (cpu): expected f32 or f64, got ", dtype_name(dtype));
  }
}

void conv2d_bwd(DType dtype, const void* x, const void* w, const void* gy, void* gx, void* gw, void* gb,
                const ConvGeometry& g, bool deterministic) {
  if (use_dnnl_conv(dtype, g, deterministic) && dnnl_conv2d_bwd(dtype, x, w, gy, gx, gw, gb, g)) return;
  switch (dtype) {
    case DType::f32:
      bwd(static_cast<const float*>(x), static_cast<const float*>(w), static_cast<const float*>(gy),
          static_cast<float*>(gx), static_cast<float*>(gw), static_cast<float*>(gb), g, deterministic);
      break;
    case DType::f64:
      bwd(static_cast<const double*>(x), static_cast<const double*>(w), static_cast<const double*>(gy),
          static_cast<double*>(gx), static_cast<double*>(gw), static_cast<double*>(gb), g, deterministic);
      break;
    default: EMBER_THROW("conv2d backward (cpu): expected f32 or f64, got ", dtype_name(dtype));
  }
}

}  // namespace ember::cpu
