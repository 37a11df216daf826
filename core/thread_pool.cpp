// ember's CPU worker threads (Note [Spinning workers]).
#include "core/thread_pool.h"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace ember {

// Note [Spinning workers]
// A small model's training step is dozens of kernels, each a parallel loop of some tens of
// microseconds. Under libgomp with OMP_WAIT_POLICY=passive (Note [One thread pool] in
// kernels/cpu/threads.cpp) every loop started by waking a sleeping thread through a futex,
// which costs about what the loop saves: a second thread made a LeNet step only 1.0-1.2x
// faster. libgomp's own spinning (GOMP_SPINCOUNT) made it 1.77x on an idle machine, but its
// spinning threads never give their core away, and with one busy process beside them two
// threads ran 4-45x slower than one (bench/results/2026-12-01-cpu-threads.md). So the
// kernels' loops run on these workers instead:
//  - After a task a worker polls for the next one for a short time (kSpinMicros), calling
//    sched_yield between polls, so that any other runnable thread (a data loader worker,
//    another process) gets the core first; then it sleeps (std::atomic::wait, a futex).
//    Back-to-back loops of one step start within microseconds; an idle process costs
//    nothing. 200 us covers the gaps between the loops of a LeNet step; 50 and 1000 us
//    measured the same within the noise.
//  - The caller is thread 0 and takes its own share; it waits for the others the same way.
//  - The thread count is OpenMP's (omp_get_max_threads), so OMP_NUM_THREADS and
//    omp_set_num_threads keep their meaning; workers are started when first needed.
//  - A loop started inside a task, or from a second thread while the workers are busy (a
//    loader thread during a step), runs inline on its caller: no nesting, no deadlock.
//  - An exception leaves its task and is rethrown by the caller once all tasks are done.
//  - After fork() the child starts new workers when it needs them (the old ones did not
//    survive the fork).
// Measured (bench/results/2026-12-01-cpu-steps-workers.md): two threads against one went from
// 0.97x to 1.91x (median) on the LeNet step and from 1.28x to 1.76x on the MLP step; with a
// busy process beside them, polling workers cost nothing against sleeping ones.
// EMBER_SPIN_US=N sets the polling time in microseconds (0: sleep at once). OMP_WAIT_POLICY
// and GOMP_SPINCOUNT are libgomp's and keep governing its threads only (oneDNN's); ember's
// programs set the former to passive at start (Note [One thread pool]), which must not stop
// these workers polling.

namespace {

constexpr int64_t kSpinMicros = 200;

int64_t spin_micros() {
  static const int64_t us = [] {
    if (const char* s = std::getenv("EMBER_SPIN_US"); s && *s) return std::max<int64_t>(0, std::atoll(s));
    return kSpinMicros;
  }();
  return us;
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

/// Waits until `word` differs from `seen` and returns its new value: polls for the spin
/// budget (yielding the core to anyone who wants it), then sleeps on the futex.
uint32_t wait_change(const std::atomic<uint32_t>& word, uint32_t seen) {
  uint32_t v = word.load(std::memory_order_acquire);
  if (v != seen) return v;
  const int64_t budget = spin_micros();
  if (budget > 0) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(budget);
    for (int i = 1;; ++i) {
      cpu_relax();
      v = word.load(std::memory_order_acquire);
      if (v != seen) return v;
      if (i % 32 == 0) {
        if (std::chrono::steady_clock::now() >= deadline) break;
        sched_yield();
      }
    }
  }
  for (;;) {
    word.wait(seen, std::memory_order_acquire);
    v = word.load(std::memory_order_acquire);
    if (v != seen) return v;
  }
}

thread_local bool t_in_task = false;

/// Every task on the calling thread, in order; the first exception is rethrown at the end.
void run_inline(int tasks, detail::TaskFn fn, void* ctx) {
  std::exception_ptr error;
  for (int t = 0; t < tasks; ++t) {
    try {
      fn(ctx, t);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}


struct alignas(64) Slot {
  std::atomic<uint32_t> go{0};  // bumped by the caller: a job for this worker
};

class Pool {
 public:
  /// Runs the job on `threads` threads (threads >= 2), the caller included.
  void run(int tasks, int threads, detail::TaskFn fn, void* ctx) {
    threads = std::min(threads, ensure_workers(threads - 1) + 1);
    if (threads < 2) {
      run_inline(tasks, fn, ctx);
      return;
    }
    fn_ = fn;
    ctx_ = ctx;
    tasks_ = tasks;
    threads_ = threads;
    error_ = nullptr;
    const uint32_t done0 = done_.load(std::memory_order_relaxed);
    pending_.store(threads - 1, std::memory_order_relaxed);
    for (int w = 1; w < threads; ++w) {
      Slot& s = *slots_[size_t(w - 1)];
      s.go.fetch_add(1, std::memory_order_release);
      s.go.notify_one();
    }
    run_share(0);
    if (pending_.load(std::memory_order_acquire) != 0) {
      uint32_t d = done0;
      while (pending_.load(std::memory_order_acquire) != 0) d = wait_change(done_, d);
    }
    if (error_) std::rethrow_exception(error_);
  }

  std::mutex& busy() { return busy_; }

 private:
  void run_share(int k) {
    const int b = int(int64_t(tasks_) * k / threads_), e = int(int64_t(tasks_) * (k + 1) / threads_);
    for (int t = b; t < e; ++t) {
      try {
        fn_(ctx_, t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  /// Starts workers until there are n; returns how many there are (fewer when the system
  /// refuses a thread: the loops then run on fewer threads).
  int ensure_workers(int n) {
    while (int(slots_.size()) < n) {
      auto slot = std::make_unique<Slot>();
      Slot* s = slot.get();
      const int k = int(slots_.size()) + 1;
      try {
        std::thread([this, s, k] { worker(*s, k); }).detach();
      } catch (const std::system_error&) {
        break;
      }
      slots_.push_back(std::move(slot));
    }
    return int(slots_.size());
  }

  void worker(Slot& slot, int k) {
    t_in_task = true;  // a loop inside a task runs inline
    uint32_t seen = 0;
    for (;;) {
      seen = wait_change(slot.go, seen);
      run_share(k);
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        done_.fetch_add(1, std::memory_order_release);
        done_.notify_one();
      }
    }
  }

  std::mutex busy_;
  std::vector<std::unique_ptr<Slot>> slots_;
  detail::TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int tasks_ = 0, threads_ = 0;
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<uint32_t> done_{0};
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// Never destroyed: its detached workers may still be asleep in it when the program exits.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_atfork_once;

Pool& pool() {
  Pool* p = g_pool.load(std::memory_order_acquire);
  if (p) return *p;
  static std::mutex create_mu;
  std::lock_guard<std::mutex> lock(create_mu);
  p = g_pool.load(std::memory_order_acquire);
  if (!p) {
    std::call_once(g_atfork_once, [] {
      // The child of a fork has none of the workers: it starts a new pool when it needs one
      // (the old one is left unreachable; its memory is the child's to drop at exit).
      pthread_atfork(nullptr, nullptr, [] { g_pool.store(nullptr, std::memory_order_relaxed); });
    });
    p = new Pool;
    g_pool.store(p, std::memory_order_release);
  }
  return *p;
}

}  // namespace

int cpu_threads() { return omp_get_max_threads(); }

bool in_parallel_region() { return t_in_task; }

int parallel_threads() { return t_in_task || omp_in_parallel() ? 1 : omp_get_max_threads(); }

namespace detail {

void run_tasks(int tasks, int threads, TaskFn fn, void* ctx) {
  if (tasks <= 0) return;
  threads = std::min(threads, tasks);
  struct InTask {
    bool before = t_in_task;
    InTask() { t_in_task = true; }
    ~InTask() { t_in_task = before; }
  };
  if (threads <= 1 || t_in_task || omp_in_parallel()) {
    InTask in;
    run_inline(tasks, fn, ctx);
    return;
  }
  Pool& p = pool();
  std::unique_lock<std::mutex> lock(p.busy(), std::try_to_lock);
  InTask in;
  if (!lock.owns_lock()) {
    run_inline(tasks, fn, ctx);
    return;
  }
  p.run(tasks, threads, fn, ctx);
}

}  // namespace detail

}  // namespace ember
