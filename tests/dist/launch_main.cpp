// dist_launch: ember's local launcher (dist::spawn_local_workers, as the apps'
// --nproc-per-node) around any program, for the tests that run the tests/dist/ programs
// the env:// way (Gloo and the TCP or file store) instead of under mpirun.
// Usage: dist_launch --nproc-per-node N [--nnodes M --node-rank R --master-addr HOST
//                    --master-port P] [--rdzv-file PATH] [--grace S] -- PROGRAM [ARGS...]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "dist/launch.h"

int main(int argc, char** argv) {
  ember::dist::LaunchOptions o;
  o.name = "dist_launch";
  int i = 1;
  auto value = [&](const char* flag) -> std::string {
    if (i + 1 >= argc) {
      std::fprintf(stderr, "dist_launch: %s needs a value\n", flag);
      std::exit(2);
    }
    return argv[++i];
  };
  for (; i < argc && std::strcmp(argv[i], "--") != 0; ++i) {
    std::string a = argv[i];
    if (a == "--nproc-per-node") o.nproc_per_node = std::atoi(value("--nproc-per-node").c_str());
    else if (a == "--nnodes") o.nnodes = std::atoi(value("--nnodes").c_str());
    else if (a == "--node-rank") o.node_rank = std::atoi(value("--node-rank").c_str());
    else if (a == "--master-addr") o.master_addr = value("--master-addr");
    else if (a == "--master-port") o.master_port = std::atoi(value("--master-port").c_str());
    else if (a == "--rdzv-file") o.rdzv_file = value("--rdzv-file");
    else if (a == "--grace") o.grace_seconds = std::atof(value("--grace").c_str());
    else {
      std::fprintf(stderr, "dist_launch: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (i + 1 >= argc) {
    std::fprintf(stderr, "usage: dist_launch --nproc-per-node N [...] -- PROGRAM [ARGS...]\n");
    return 2;
  }
  std::vector<std::string> args(argv + i + 1, argv + argc);
  try {
    return ember::dist::spawn_local_workers(o, args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dist_launch: error: %s\n", e.what());
    return 2;
  }
}
