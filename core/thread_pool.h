#pragma once
// ember's CPU worker threads, which run the kernels' parallel loops: Note [Spinning workers]
// in core/thread_pool.cpp.
#include <memory>
#include <type_traits>
#include <utility>

namespace ember {

/// The CPU thread count kernels use: OpenMP's (OMP_NUM_THREADS, omp_set_num_threads).
int cpu_threads();

/// Whether the calling thread is running a task of parallel_tasks (a nested call runs inline).
bool in_parallel_region();

/// The threads a loop started here may use: 1 inside a parallel task or inside an OpenMP
/// parallel region (an embedding program's own), else cpu_threads().
int parallel_threads();

namespace detail {
using TaskFn = void (*)(void* ctx, int task);
void run_tasks(int tasks, int threads, TaskFn fn, void* ctx);
/// Tests only: paused workers ignore new jobs, so their callers run every task themselves.
void pause_workers_for_test(bool paused);
}  // namespace detail

/// Runs f(t) once for every t in [0, tasks) on at most min(threads, tasks) threads, the
/// caller being one of them and running task 0. Thread k starts on the contiguous tasks
/// [tasks*k/n, tasks*(k+1)/n), as OpenMP's `for schedule(static)`; a thread whose share is
/// done takes the tasks another has not started yet (a worker still waking, or descheduled
/// by another process), so which thread runs a task is not fixed: a task's result must not
/// depend on its thread. Returns when every task has finished; rethrows the first exception
/// a task threw (the other tasks still run). Runs inline, on the caller alone, when threads
/// is 1, inside another parallel_tasks, or while another thread is using the workers.
template <class F>
void parallel_tasks(int tasks, int threads, F&& f) {
  using Fn = std::remove_reference_t<F>;
  detail::run_tasks(
      tasks, threads, [](void* ctx, int t) { (*static_cast<Fn*>(ctx))(t); },
      const_cast<void*>(static_cast<const void*>(std::addressof(f))));
}

/// parallel_tasks on cpu_threads() threads.
template <class F>
void parallel_tasks(int tasks, F&& f) {
  parallel_tasks(tasks, cpu_threads(), std::forward<F>(f));
}

}  // namespace ember
