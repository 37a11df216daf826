// ember's CPU worker threads (Note [Spinning workers] in core/thread_pool.cpp): every task runs
// once, on at most the threads asked, task 0 on the caller; tasks a worker has not started are
// taken by the caller (Note [Taking unstarted tasks]); nested and concurrent calls run inline;
// exceptions reach the caller; OpenMP's thread count is honored; a forked child still works.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace ember {
namespace {

// Sets OpenMP's thread count for one test.
struct Threads {
  int before = omp_get_max_threads();
  explicit Threads(int n) { omp_set_num_threads(n); }
  ~Threads() { omp_set_num_threads(before); }
};

/// Makes the tasks that call it wait until `n` of them have started (or 10 s have passed:
/// the test then fails instead of hanging); true when all n started.
struct Rendezvous {
  std::atomic<int> started{0};
  int n;
  explicit Rendezvous(int count) : n(count) {}
  bool arrive() {
    started.fetch_add(1);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (started.load() < n)
      if (std::chrono::steady_clock::now() > deadline) return false;
    return true;
  }
};

TEST(ThreadPool, EveryTaskRunsOnceOnAtMostTheThreadsAsked) {
  Threads use(3);
  EXPECT_EQ(cpu_threads(), 3);
  for (int tasks : {1, 2, 3, 7, 64}) {
    const size_t count = size_t(tasks);
    std::vector<std::atomic<int>> runs(count);
    std::vector<std::thread::id> who(count);
    parallel_tasks(tasks, [&](int t) {
      runs[size_t(t)].fetch_add(1);
      who[size_t(t)] = std::this_thread::get_id();
      EXPECT_TRUE(in_parallel_region());
    });
    std::set<std::thread::id> threads(who.begin(), who.end());
    for (size_t t = 0; t < count; ++t) EXPECT_EQ(runs[t].load(), 1) << "task " << t << " of " << tasks;
    EXPECT_EQ(who[0], std::this_thread::get_id()) << "task 0 runs on the caller";
    EXPECT_LE(int(threads.size()), std::min(tasks, 3)) << tasks << " tasks";
  }
  EXPECT_FALSE(in_parallel_region());
}

TEST(ThreadPool, TheThreadsAskedRunAtOnce) {
  // Each task waits for all three to start, so they must run on three threads at once.
  Threads use(3);
  Rendezvous all(3);
  std::vector<std::thread::id> who(3);
  std::atomic<int> met{0};
  parallel_tasks(3, [&](int t) {
    who[size_t(t)] = std::this_thread::get_id();
    if (all.arrive()) met.fetch_add(1);
  });
  EXPECT_EQ(met.load(), 3) << "the three tasks did not all run at once";
  EXPECT_EQ(std::set<std::thread::id>(who.begin(), who.end()).size(), 3u);
  EXPECT_EQ(who[0], std::this_thread::get_id());
}

TEST(ThreadPool, TheCallerTakesTheTasksOfWorkersThatDoNotRun) {
  // Note [Taking unstarted tasks]: with the workers ignoring jobs (as if another process held
  // their cores), the caller runs every task and returns, instead of waiting for them.
  Threads use(2);
  parallel_tasks(2, [](int) {});  // the worker exists
  detail::pause_workers_for_test(true);
  std::vector<std::thread::id> who(6);
  for (int round = 0; round < 50; ++round)
    parallel_tasks(6, [&](int t) { who[size_t(t)] = std::this_thread::get_id(); });
  detail::pause_workers_for_test(false);
  for (auto& w : who) EXPECT_EQ(w, std::this_thread::get_id());
  // The worker is back: two tasks that wait for each other need it.
  Rendezvous both(2);
  std::atomic<int> met{0};
  parallel_tasks(2, [&](int) {
    if (both.arrive()) met.fetch_add(1);
  });
  EXPECT_EQ(met.load(), 2);
}

TEST(ThreadPool, OneThreadRunsEverythingOnTheCaller) {
  Threads use(1);
  std::vector<std::thread::id> who(5);
  parallel_tasks(5, [&](int t) { who[size_t(t)] = std::this_thread::get_id(); });
  for (auto& w : who) EXPECT_EQ(w, std::this_thread::get_id());
  EXPECT_EQ(parallel_threads(), 1);
}

TEST(ThreadPool, NestedCallsRunInlineOnTheirTask) {
  Threads use(2);
  std::atomic<int> inner{0}, wrong{0};
  parallel_tasks(2, [&](int) {
    EXPECT_EQ(parallel_threads(), 1);
    const auto me = std::this_thread::get_id();
    parallel_tasks(4, [&](int) {
      inner.fetch_add(1);
      if (std::this_thread::get_id() != me) wrong.fetch_add(1);
    });
  });
  EXPECT_EQ(inner.load(), 8);
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ThreadPool, ExceptionsReachTheCallerAfterEveryTaskRan) {
  Threads use(2);
  for (int thrower : {0, 1}) {  // the caller's task, then the worker's
    std::atomic<int> ran{0};
    try {
      parallel_tasks(2, [&](int t) {
        ran.fetch_add(1);
        if (t == thrower) throw std::runtime_error("task failed");
      });
      ADD_FAILURE() << "no exception from task " << thrower;
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "task failed");
    }
    EXPECT_EQ(ran.load(), 2);
  }
  // The workers are still usable.
  std::atomic<int> ran{0};
  parallel_tasks(2, [&](int) { ran.fetch_add(1); });
  EXPECT_EQ(ran.load(), 2);
}

TEST(ThreadPool, ConcurrentCallersFromSeveralThreadsAllFinish) {
  // Each thread's loops must all run, whether they got the workers or ran inline. The
  // threads pass their thread count instead of calling omp_set_num_threads, which would make
  // libgomp allocate per-thread state for a thread that then exits (a leak report risk in
  // the sanitizer build).
  constexpr int kCallers = 4, kLoops = 2000;
  std::vector<std::thread> callers;
  std::atomic<int64_t> sum{0};
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&] {
      for (int i = 0; i < kLoops; ++i) parallel_tasks(3, 2, [&](int t) { sum.fetch_add(t + 1); });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(sum.load(), int64_t(kCallers) * kLoops * 6);
}

TEST(ThreadPool, ManyShortLoopsInARow) {
  // Back-to-back loops (the workers polling) and loops after a pause (the workers asleep).
  Threads use(2);
  int64_t total = 0;
  std::vector<int64_t> part(2);
  for (int i = 0; i < 20000; ++i) {
    parallel_tasks(2, [&](int t) { part[size_t(t)] = i + t; });
    total += part[0] + part[1];
    if (i % 5000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  int64_t want = 0;
  for (int i = 0; i < 20000; ++i) want += 2 * i + 1;
  EXPECT_EQ(total, want);
}

TEST(ThreadPool, AForkedChildStartsItsOwnWorkers) {
  Threads use(2);
  std::atomic<int> ran{0};
  parallel_tasks(2, [&](int) { ran.fetch_add(1); });  // the parent's workers exist
  ASSERT_EQ(ran.load(), 2);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::atomic<int> n{0};
    std::atomic<bool> other{false};
    const auto me = std::this_thread::get_id();
    Rendezvous both(2);  // the two tasks wait for each other: two threads, or a failure
    parallel_tasks(2, [&](int) {
      if (both.arrive()) n.fetch_add(1);
      if (std::this_thread::get_id() != me) other = true;
    });
    _exit(n.load() == 2 && other.load() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "the child did not exit normally (hung or crashed)";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's loop did not run on two threads";
}

}  // namespace
}  // namespace ember
