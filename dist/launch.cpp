// The local launcher (Note [Local launcher] in dist/launch.h).
#include "dist/launch.h"

#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>

#include "dist/communicator.h"
#include "dist/store.h"

extern char** environ;

namespace ember::dist {

namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_forward_signal = 0;

void on_signal(int sig) { g_forward_signal = sig; }

int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string describe_status(int st) {
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char* name = strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "exited with status " + std::to_string(WEXITSTATUS(st));
}

int exit_code(int st) { return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st); }

}  // namespace

std::string this_executable() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("--nproc-per-node: cannot find this program's path (/proc/self/exe): " +
                          std::string(std::strerror(errno)));
  return std::string(buf, size_t(n));
}

bool is_launched_worker() {
  const char* v = std::getenv("EMBER_LAUNCH_WORKER");
  return v && std::strcmp(v, "1") == 0;
}

void check_launch_options(const LaunchOptions& o) {
  auto bad = [](const std::string& m) { throw Error("--nproc-per-node: " + m); };
  if (o.nproc_per_node < 1) bad("needs at least 1 process per node, got " + std::to_string(o.nproc_per_node));
  if (o.nnodes < 1) bad("--nnodes must be at least 1, got " + std::to_string(o.nnodes));
  if (o.node_rank < 0 || o.node_rank >= o.nnodes)
    bad("--node-rank " + std::to_string(o.node_rank) + " is not a node of --nnodes " + std::to_string(o.nnodes) +
        " (0 to " + std::to_string(o.nnodes - 1) + ")");
  if (o.master_port < 0 || o.master_port > 65535) bad("--master-port " + std::to_string(o.master_port) + " is not a TCP port");
  if (o.nnodes > 1 && o.rdzv_file.empty()) {
    if (o.master_port == 0)
      bad("several nodes (--nnodes " + std::to_string(o.nnodes) + ") need --master-port P (the port node 0 serves "
          "the rendezvous on, the same on every node) or --rdzv-file PATH on a shared file system");
    // Node 0 too: its workers' transports listen on the interface that routes there.
    if (o.master_addr.empty())
      bad("several nodes: node " + std::to_string(o.node_rank) + " needs --master-addr HOST (node 0's address as "
          "the other nodes reach it, the same on every node)");
  }
}

int spawn_local_workers(const LaunchOptions& o, std::vector<std::string> argv) {
  check_launch_options(o);
  if (argv.empty()) argv.push_back(this_executable());
  const int n = o.nproc_per_node, world = o.nnodes * n;
  std::string addr = o.master_addr.empty() ? "127.0.0.1" : o.master_addr;

  // Node 0 serves the TCP store for the whole job, for as long as its workers run.
  std::unique_ptr<TcpStoreServer> server;
  int port = o.master_port;
  if (o.rdzv_file.empty() && o.node_rank == 0) {
    server = std::make_unique<TcpStoreServer>(o.master_port);
    port = server->port();
  }

  std::map<std::string, std::string> base;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    size_t eq = kv.find('=');
    if (eq != std::string::npos) base[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const char* k : {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                        "MASTER_PORT", "EMBER_STORE_SERVED", "EMBER_RDZV_FILE"})
    base.erase(k);
  base["WORLD_SIZE"] = std::to_string(world);
  base["LOCAL_WORLD_SIZE"] = std::to_string(n);
  base["GROUP_RANK"] = std::to_string(o.node_rank);
  base["EMBER_LAUNCH_WORKER"] = "1";
  if (o.rdzv_file.empty()) {
    base["MASTER_ADDR"] = addr;
    base["MASTER_PORT"] = std::to_string(port);
    base["EMBER_STORE_SERVED"] = "1";
  } else {
    base["EMBER_RDZV_FILE"] = o.rdzv_file;
    if (!o.master_addr.empty()) base["MASTER_ADDR"] = o.master_addr;  // picks the transports' interface
  }
  if (!base.count("OMP_NUM_THREADS")) base["OMP_NUM_THREADS"] = std::to_string(std::max(1, usable_cores() / n));

  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  g_forward_signal = 0;

  std::fprintf(stderr, "%s: starting %d worker%s (rank%s %d%s of %d) on node %d of %d; rendezvous: %s\n",
               o.name.c_str(), n, n > 1 ? "s" : "", n > 1 ? "s" : "", o.node_rank * n,
               n > 1 ? ("-" + std::to_string(o.node_rank * n + n - 1)).c_str() : "", world, o.node_rank, o.nnodes,
               o.rdzv_file.empty() ? ("TCP store at " + addr + ":" + std::to_string(port) +
                                      (server ? ", served here" : "")).c_str()
                                   : ("file " + o.rdzv_file).c_str());
  std::vector<pid_t> pids(size_t(n), -1);
  std::vector<bool> running(size_t(n), false);
  int first_failure = -1, code = 0;
  // Each worker leads its own process group, so that a signal reaches what it started too
  // (a shell's children, helper processes) and nothing outlives the job.
  auto end_all = [&](int sig) {
    for (int i = 0; i < n; ++i)
      if (running[size_t(i)]) ::kill(-pids[size_t(i)], sig);
  };
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (int local = 0; local < n; ++local) {
    const int rank = o.node_rank * n + local;
    auto env = base;
    env["RANK"] = std::to_string(rank);
    env["LOCAL_RANK"] = std::to_string(local);
    std::vector<std::string> kv;
    for (auto& [k, v] : env) kv.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : kv) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, args[0], nullptr, &attr, args.data(), envp.data());
    if (rc != 0) {
      std::fprintf(stderr, "%s: cannot start worker rank %d (%s): %s\n", o.name.c_str(), rank, args[0],
                   std::strerror(rc));
      first_failure = rank;
      code = 1;
      end_all(SIGTERM);
      break;
    }
    pids[size_t(local)] = pid;
    running[size_t(local)] = true;
  }

  posix_spawnattr_destroy(&attr);
  Clock::time_point kill_at = Clock::time_point::max();
  bool terminating = first_failure >= 0;
  if (terminating) kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.grace_seconds));
  int left = 0;
  for (bool r : running) left += r;
  while (left > 0) {
    if (g_forward_signal) {
      int sig = g_forward_signal;
      g_forward_signal = 0;
      std::fprintf(stderr, "%s: got signal %d: passing it to the workers\n", o.name.c_str(), sig);
      end_all(sig);
      if (!terminating) {
        terminating = true;
        code = 128 + sig;
        kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.grace_seconds));
      }
    }
    // Reap every worker that ended; a signal beats an exit status as the cause when both
    // come in one sweep (a killed rank's peers fail right after it).
    std::vector<std::pair<int, int>> ended;  // local index, status
    for (int i = 0; i < n; ++i) {
      if (!running[size_t(i)]) continue;
      int st = 0;
      pid_t r = ::waitpid(pids[size_t(i)], &st, WNOHANG);
      if (r == pids[size_t(i)]) {
        running[size_t(i)] = false;
        --left;
        ended.emplace_back(i, st);
      }
    }
    std::stable_sort(ended.begin(), ended.end(),
                     [](const auto& a, const auto& b) { return WIFSIGNALED(a.second) > WIFSIGNALED(b.second); });
    for (auto& [i, st] : ended) {
      const bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
      if (ok) continue;
      const int rank = o.node_rank * n + i;
      if (!terminating) {
        terminating = true;
        first_failure = rank;
        code = exit_code(st);
        std::fprintf(stderr, "%s: worker rank %d (pid %d) %s%s\n", o.name.c_str(), rank, int(pids[size_t(i)]),
                     describe_status(st).c_str(), left > 0 ? "; ending the other workers" : "");
        end_all(SIGTERM);
        kill_at = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.grace_seconds));
      } else if (first_failure >= 0 && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
        std::fprintf(stderr, "%s: worker rank %d %s\n", o.name.c_str(), rank, describe_status(st).c_str());
      }
    }
    if (left == 0) break;
    if (terminating && Clock::now() >= kill_at) {
      std::fprintf(stderr, "%s: workers still running %g s after SIGTERM: SIGKILL\n", o.name.c_str(), o.grace_seconds);
      end_all(SIGKILL);
      kill_at = Clock::time_point::max();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  if (first_failure >= 0)
    std::fprintf(stderr, "%s: the job failed: worker rank %d failed first (exit status %d)\n", o.name.c_str(),
                 first_failure, code);
  return code;
}

}  // namespace ember::dist
