// libFuzzer target: the apps' command-line parser (apps/common/config.cpp on CLI11). The input
// is the argument list, one argument per line (argv[0] is the app's name).
// EMBER_FUZZ_WRITE_SEEDS=DIR writes the command lines the app tests use there and exits.
#include <cstdlib>
#include <fstream>

#include "config_common.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("EMBER_FUZZ_WRITE_SEEDS");
  if (!dir) return 0;
  const char* lines[] = {
      "--epochs\n2\n--limit-train\n3000\n--batch-size\n32\n--lr\n0.05\n--device\ncpu\n",
      "--deterministic\n--epochs=1\n--seed\n18446744073709551615\n--no-tensorboard\n",
      "--save-every\n5\n--crash-iteration\n25\n--resume\nout/last.ckpt\n--keep-checkpoints\n3\n",
      "--scheduler\nmultistep\n--milestones\n10,20\n--gamma\n0.5\n--warmup-epochs\n1\n--sched-unit\niteration\n",
      "--model\nmlp\n--dataset\nfashion-mnist\n--grad-compression\nfp16\n--bucket-mb\n0.5\n--sync-bn\n",
      "--help\n",
      "--epochs\n-1\n",
      "--config\n/nonexistent.yaml\n",
  };
  int i = 0;
  for (const char* l : lines) std::ofstream(std::string(dir) + "/cmdline_" + std::to_string(i++)) << l;
  std::exit(0);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args = {"mnist"};
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\n') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(char(data[i]));
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.size() > 64) return 0;  // a command line, not a stress test of CLI11's lists
  ember::fuzz::parse_args(args);
  return 0;
}
