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
//  - The caller is thread 0: it claims task 0 before waking anyone, then runs its share.
//    Each thread's share is a range of tasks with an atomic cursor; a thread whose range is
//    done takes the unstarted tasks of the others' ranges (Note [Taking unstarted tasks]).
//    The caller waits only for tasks that are running, the same way the workers wait.
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
//
// Note [Taking unstarted tasks]: with a static split, a loop lasts as long as its slowest
// thread. When another process keeps one of the two cores busy, the worker on it gets the
// core late or for half the time, and two threads ran about 10% slower than one. Now the
// caller (or any thread done early) takes over the tasks a worker has not begun, so a loop
// never waits for a thread that is not running, and a worker that was never scheduled costs
// nothing. On an idle machine each thread still takes its own range first (caller: range
// 0), so consecutive loops keep their data in the same core's cache. Results do not change:
// the partition into tasks depends on the task count alone, never on which thread runs a
// task. Claims are tagged with the job's generation, so a worker that wakes after its job
// has ended claims nothing.
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
  std::atomic<uint32_t> go{0};  // the job's generation, stored by the caller: a job for this worker
};

/// One thread's share of a job: tasks [next, end), claimed front to back by the owner and,
/// once the owner's share is done, by any other thread of the job.
struct alignas(64) Range {
  std::atomic<uint64_t> cursor{0};  // generation << 32 | next task
  std::atomic<int> end{0};
};

std::atomic<bool> g_paused{false};  // detail::pause_workers_for_test

class Pool {
 public:
  /// The most threads a job uses (the ranges are fixed, so that a late worker never reads
  /// freed memory).
  static constexpr int kMaxThreads = 256;

  /// Runs the job on up to `threads` threads (threads >= 2), the caller included.
  void run(int tasks, int threads, detail::TaskFn fn, void* ctx) {
    threads = std::min({threads, kMaxThreads, ensure_workers(threads - 1) + 1});
    if (threads < 2) {
      run_inline(tasks, fn, ctx);
      return;
    }
    // Publish the job: its fields, then each range under the new generation (release), so a
    // thread that claims a task of this generation sees them.
    fn_ = fn;
    ctx_ = ctx;
    tasks_ = tasks;
    error_ = nullptr;
    finished_.store(0, std::memory_order_relaxed);
    nranges_.store(threads, std::memory_order_relaxed);
    const uint32_t gen = ++gen_;
    for (int k = 0; k < threads; ++k) {
      ranges_[k].end.store(int(int64_t(tasks) * (k + 1) / threads), std::memory_order_relaxed);
      ranges_[k].cursor.store(uint64_t(gen) << 32 | uint64_t(int64_t(tasks) * k / threads), std::memory_order_release);
    }
    const int first = claim(ranges_[0], gen);  // task 0 is the caller's, whoever wakes first
    for (int w = 1; w < threads; ++w) {
      Slot& s = *slots_[size_t(w - 1)];
      s.go.store(gen, std::memory_order_release);
      s.go.notify_one();
    }
    if (first >= 0) run_task(first);
    work(0, gen);
    // Every task claimed, by us or by workers; wait for those still running.
    for (;;) {
      const uint32_t d = done_.load(std::memory_order_acquire);
      if (finished_.load(std::memory_order_acquire) == tasks) break;
      wait_change(done_, d);
    }
    if (error_) std::rethrow_exception(error_);
  }

  std::mutex& busy() { return busy_; }

 private:
  /// Claims the next task of r for job `gen`; -1 when r has none left or the job is over.
  int claim(Range& r, uint32_t gen) {
    uint64_t c = r.cursor.load(std::memory_order_acquire);
    for (;;) {
      if (uint32_t(c >> 32) != gen) return -1;
      const int t = int(uint32_t(c));
      if (t >= r.end.load(std::memory_order_relaxed)) return -1;
      if (r.cursor.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel, std::memory_order_acquire)) return t;
    }
  }

  /// Runs a claimed task; the job stays alive until its last task has finished here.
  void run_task(int t) {
    const int total = tasks_;
    try {
      fn_(ctx_, t);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
    }
    if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == total) {
      done_.fetch_add(1, std::memory_order_release);
      done_.notify_one();
    }
  }

  /// Thread k's part of job `gen`: its own range, then whatever the others have not started.
  void work(int k, uint32_t gen) {
    const int n = nranges_.load(std::memory_order_relaxed);
    for (int i = 0; i < n; ++i) {
      Range& r = ranges_[(k + i) % n];
      for (int t; (t = claim(r, gen)) >= 0;) run_task(t);
    }
  }

  /// Starts workers until there are n; returns how many there are (fewer when the system
  /// refuses a thread: the loops then run on fewer threads).
  int ensure_workers(int n) {
    n = std::min(n, kMaxThreads - 1);
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
      if (!g_paused.load(std::memory_order_relaxed)) work(k, seen);
    }
  }

  std::mutex busy_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::unique_ptr<Range[]> ranges_ = std::make_unique<Range[]>(kMaxThreads);
  detail::TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int tasks_ = 0;
  uint32_t gen_ = 0;
  std::atomic<int> nranges_{0};
  alignas(64) std::atomic<int> finished_{0};
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

void pause_workers_for_test(bool paused) { g_paused.store(paused); }

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
