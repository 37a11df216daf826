// Regression tests for the defects of issue 15 (fuzzing the readers, comparing with PyTorch).
// The small reproducers found by fuzzing are copied into tests/data/repro/ (from
// ../shared/repro, whose README says what each does); the others are built here. Every bad
// input must end in an ember::Error that says what is wrong: no crash, hang, huge
// allocation or silent success.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#if EMBER_REPRO_HAS_APP_CONFIG
#include "apps/common/config.h"
#endif
#include "data/image_folder.h"
#include "data/mnist.h"
#include "io/safetensors.h"
#include "optim/grad_scaler.h"
#include "optim/lr_scheduler.h"
#include "optim/sgd.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace ember {
namespace {

std::string repro(const std::string& name) {
  return std::string(EMBER_SOURCE_DIR) + "/tests/data/repro/" + name;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

// Runs fn in a child process: true when it returned (or threw ember::Error with `needle` in
// its message) within `seconds`; a hang is killed and reported as false instead of hanging
// the suite.
::testing::AssertionResult finishes_with_error(const std::function<void()>& fn,
                                               const std::string& needle, int seconds = 20) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 3;
    try {
      fn();
      code = 2;  // no error
    } catch (const Error& e) {
      code = std::string(e.what()).find(needle) != std::string::npos ? 0 : 4;
      if (code) std::fprintf(stderr, "message: %s\n", e.what());
    } catch (...) {
    }
    _exit(code);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return ::testing::AssertionFailure() << "still running after " << seconds << " s (blocked?)";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << (WIFEXITED(status) ? (WEXITSTATUS(status) == 2   ? "no error"
                                  : WEXITSTATUS(status) == 4 ? "an error without '" + needle + "'"
                                                             : "another exception")
                               : "killed by signal " + std::to_string(WTERMSIG(status)));
}

// The process's peak virtual memory (VmPeak), in bytes; 0 when /proc is missing.
int64_t vm_peak() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmPeak:", 0) == 0) return std::stoll(line.substr(7)) * 1024;
  return 0;
}

// ---- idx (data/mnist.cpp)

TEST(ReproIdx, DimensionProductOverflowIsACorruptHeader) {
  // [3221225472, 3221225472, 16]: the product wrapped to 0 and passed the size check.
  EXPECT_ERROR(data::read_idx_images(repro("idx_dims_wrap_zero")), "corrupt header");
  EXPECT_ERROR(data::read_idx_images(repro("idx_fuzz_crash_mul_overflow")), "corrupt header");
  // A zero count does not hide the other dims: [0, 2^32-1, 2^32-1] overflows the strides.
  fs::path dir = test::scratch_dir("repro_idx");
  write_bytes(dir / "z", be32(0x803) + be32(0) + be32(0xffffffffu) + be32(0xffffffffu));
  EXPECT_ERROR(data::read_idx_images((dir / "z").string()), "corrupt header");
  // The largest header that is not absurd still reads (an empty file of 0 images).
  write_bytes(dir / "e", be32(0x803) + be32(0) + be32(28) + be32(28));
  EXPECT_EQ(data::read_idx_images((dir / "e").string()).shape(), Shape({0, 28, 28}));
  fs::remove_all(dir);
}

TEST(ReproIdx, TinyGzipClaimingGigabytesFailsBeforeAllocating) {
  // 31 bytes whose header claims [4096, 4096, 1024] (16 GiB): no deflate stream of that
  // size decompresses to more than 1032 times its size.
  const int64_t peak = vm_peak();
  try {
    data::read_idx_images(repro("idx_gz_claims_16GiB.gz"));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("corrupt header"), std::string::npos) << msg;
    EXPECT_NE(msg.find("decompresses to at most"), std::string::npos) << msg;
  }
  if (peak > 0) EXPECT_LT(vm_peak() - peak, int64_t(1) << 30);
}

TEST(ReproIdx, ShortGzipDataIsTruncatedWithoutTheClaimedAllocation) {
  // A header that claims 1000 x 1000 x 1000 (1 GB, plausible for a 1 MB file of zeros would
  // not be: this one holds 1 MB of incompressible bytes) is read incrementally: memory
  // follows what decompresses, and the short data is an error.
  fs::path dir = test::scratch_dir("repro_gz");
  std::string raw = be32(0x803) + be32(1000) + be32(1000) + be32(1000);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < (1 << 20); ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    raw.push_back(char(x));
  }
  const std::string p = (dir / "short.gz").string();
  gzFile g = gzopen(p.c_str(), "wb");
  gzwrite(g, raw.data(), unsigned(raw.size()));
  gzclose(g);
  const int64_t peak = vm_peak();
  EXPECT_ERROR(data::read_idx_images(p), "truncated");
  if (peak > 0) EXPECT_LT(vm_peak() - peak, int64_t(512) << 20);
  fs::remove_all(dir);
}

TEST(ReproIdx, MnistChecksTheImageSizeBeforeReadingTheData) {
  // 28x28 is checked from the header: a gzip bomb with other dims is refused at once.
  fs::path dir = test::scratch_dir("repro_mnist28");
  std::string raw = be32(0x803) + be32(100000) + be32(100) + be32(100);
  raw.resize(raw.size() + 4000000, '\0');
  const std::string p = (dir / "train-images-idx3-ubyte.gz").string();
  gzFile g = gzopen(p.c_str(), "wb");
  gzwrite(g, raw.data(), unsigned(raw.size()));
  gzclose(g);
  std::string labels = be32(0x801) + be32(1) + std::string(1, '\0');
  write_bytes(dir / "train-labels-idx1-ubyte", labels);
  EXPECT_ERROR(data::MnistDataset(dir.string()), "100x100, expected 28x28");
  fs::remove_all(dir);
}

TEST(ReproIdx, FifoIsAnErrorNotABlockedOpen) {
  fs::path dir = test::scratch_dir("repro_fifo_idx");
  const std::string p = (dir / "fifo").string();
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  EXPECT_TRUE(finishes_with_error([&] { data::read_idx_images(p); }, "not a regular file"));
  fs::remove_all(dir);
}

// ---- shapes (tensor/tensor.cpp) and safetensors

TEST(ReproShapes, OverflowingShapesAreErrorsEvenWhenEmpty) {
  const int64_t big = int64_t(1) << 62;
  EXPECT_ERROR(shape_numel({big, big, 0}), "overflows int64");
  EXPECT_ERROR(shape_numel({0, big, big}), "overflows int64");
  EXPECT_ERROR(contiguous_strides({0, big, big}), "overflow int64");
  EXPECT_ERROR(empty({big, big, 0}), "overflows int64");
  EXPECT_ERROR(zeros({0, big, big}), "overflows int64");
  EXPECT_ERROR(zeros({0}).reshape({0, big, big}), "overflows int64");
  // Elements that fit but bytes that do not.
  EXPECT_ERROR(empty({int64_t(1) << 61, 2}, {.dtype = DType::f64}), "2^63 bytes");
  // Large but representable empty shapes still work.
  EXPECT_EQ(shape_numel({int64_t(1) << 40, 0, int64_t(1) << 20}), 0);
  EXPECT_EQ(empty({int64_t(1) << 40, 0}).numel(), 0);
  EXPECT_EQ(contiguous_strides({2, 0, 3}), Shape({3, 3, 1}));
}

TEST(ReproSafetensors, HugeEmptyShapesAreClearErrors) {
  for (const char* f : {"st_zero_dim_huge.safetensors", "st_zero_dim_huge2.safetensors"}) {
    try {
      load_safetensors(repro(f));
      ADD_FAILURE() << f << ": no error";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(f), std::string::npos) << msg;
      EXPECT_NE(msg.find("overflow"), std::string::npos) << msg;
      EXPECT_NE(msg.find("tensor '"), std::string::npos) << "names the tensor: " << msg;
    }
  }
}

TEST(ReproSafetensors, FifoIsAnErrorNotABlockedOpen) {
  fs::path dir = test::scratch_dir("repro_fifo_st");
  const std::string p = (dir / "weights.safetensors").string();
  ASSERT_EQ(mkfifo(p.c_str(), 0600), 0);
  EXPECT_TRUE(finishes_with_error([&] { load_safetensors(p); }, "not a regular file (a FIFO)"));
  fs::remove_all(dir);
}

// ---- image folder (stb_image guards)

struct ImageCase {
  const char* file;
  const char* as;  // the name it gets in the class folder
  const char* message;
};

TEST(ReproImages, BadImagesAreRejectedBeforeStbDecodesThem) {
  const ImageCase cases[] = {
      {"img_pgm_maxval256.pgm", "x.pgm", "16-bit PNM (maxval 256 > 255) is not supported"},
      {"img_ppm_maxval256.ppm", "x.ppm", "16-bit PNM"},
      {"img_ppm16_heap_overflow_fuzz.ppm", "x.ppm", "16-bit PNM"},
      {"img_jpeg_dht_overflow.jpg", "x.jpg", "Huffman table (DHT) defines"},
      {"img_jpeg_segv.jpg", "x.jpg", "Huffman table (AC 0) that no DHT segment defined"},
      {"img_pgm_zero_height.pgm", "x.pgm", "must be positive"},
      // 0xFF fill bytes before SOI: stb still reads a JPEG, the guard did not (fuzz/image_fuzz)
      {"img_jpeg_fill_before_soi.jpg", "x.jpg", "Huffman table (DHT) defines"},
      // 373 bytes declaring 65496x8416 pixels: refused from the header (fuzz/image_fuzz timeout)
      {"img_jpeg_bomb_65496x8416.jpg", "x.jpg", "has more than 178956970 pixels"},
  };
  for (const ImageCase& c : cases) {
    for (int channels : {1, 3}) {
      fs::path root = test::scratch_dir("repro_img");
      write_bytes(root / "a" / c.as, read_bytes(repro(c.file)));
      try {
        data::ImageFolderDataset ds(root.string(), data::Normalize::none(), channels);
        ADD_FAILURE() << c.file << " (channels " << channels << "): no error";
      } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(c.message), std::string::npos) << c.file << ": " << msg;
        EXPECT_NE(msg.find(c.as), std::string::npos) << "names the file: " << msg;
      }
      fs::remove_all(root);
    }
  }
}

TEST(ReproImages, EightBitPnmStillDecodes) {
  fs::path root = test::scratch_dir("repro_pnm8");
  // Comments and odd whitespace as stb reads them.
  write_bytes(root / "a" / "g.pgm", std::string("P5\n# a comment\n2 1\t255\n") + char(7) + char(250));
  write_bytes(root / "b" / "g.pgm", std::string("P5 2 1 255 ") + char(1) + char(2));
  data::ImageFolderDataset ds(root.string(), data::Normalize::none(), 1);
  EXPECT_EQ(ds.images().to_vector<uint8_t>(), (std::vector<uint8_t>{7, 250, 1, 2}));
  fs::remove_all(root);
}

TEST(ReproImages, OneLargeHeaderAmongBadFilesAllocatesNothing) {
  // A PNG whose header says 12000x12000 (432 MB as RGB; under the decompression-bomb limit of
  // 2 x 89478485 pixels, which 16000x16000 is not) among 7 empty .png files: every header is
  // read before the dataset is allocated, so the empty files are the error and nothing near
  // 8 x 432 MB is asked for.
  fs::path root = test::scratch_dir("repro_bigpng");
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr = "IHDR" + be32(12000) + be32(12000) + std::string("\x08\x02\x00\x00\x00", 5);
  png += be32(13) + ihdr + be32(uint32_t(crc32(0, reinterpret_cast<const Bytef*>(ihdr.data()), uInt(ihdr.size()))));
  write_bytes(root / "a" / "0.png", png);
  for (int i = 1; i < 8; ++i) write_bytes(root / "a" / (std::to_string(i) + ".png"), "");
  const int64_t peak = vm_peak();
  EXPECT_ERROR(data::ImageFolderDataset(root.string()), "1.png");
  if (peak > 0) EXPECT_LT(vm_peak() - peak, int64_t(1) << 30);
  fs::remove_all(root);
}

// ---- checkpoint metadata: counts stored as doubles are range-checked before conversion

TEST(ReproCheckpointMeta, OutOfRangeCountsAreErrors) {
  nn::Linear lin(2, 2);
  optim::SGD sgd(lin.parameters(), {.lr = 0.1});
  auto expect_bad = [](optim::LRScheduler& s, optim::ScalarState st, const std::string& key, double v) {
    st[key] = v;
    EXPECT_ERROR(s.load_state_dict(st), key);
  };
  optim::CosineAnnealingLR cos(sgd, 10);
  for (double v : {1e300, -1.0, 2.5, std::nan(""), double(INFINITY)}) {
    expect_bad(cos, cos.state_dict(), "T_max", v);
    expect_bad(cos, cos.state_dict(), "last_step", v);
  }
  optim::StepLR step(sgd, 3);
  expect_bad(step, step.state_dict(), "step_size", 1e300);
  expect_bad(step, step.state_dict(), "last_step", 1e300);
  optim::MultiStepLR ms(sgd, {2, 5});
  expect_bad(ms, ms.state_dict(), "milestones.count", 1e300);
  expect_bad(ms, ms.state_dict(), "milestones.0", 1e300);
  auto warm = std::make_shared<optim::CosineAnnealingLR>(sgd, 10);
  optim::WarmupLR wu(sgd, warm, 2);
  expect_bad(wu, wu.state_dict(), "warmup_steps", 1e300);
  // A good state still loads, and the failed loads changed nothing.
  optim::ScalarState good = cos.state_dict();
  good["last_step"] = 4;
  cos.load_state_dict(good);
  EXPECT_EQ(cos.last_step(), 4);
  optim::GradScaler scaler;
  optim::ScalarState gs = scaler.state_dict();
  gs["growth_interval"] = 1e300;
  EXPECT_ERROR(scaler.load_state_dict(gs), "invalid state");
}

// ---- load_state_dict: a tensor of another dtype kind is an error naming it

TEST(ReproStateDict, IntegerWeightsForAFloatModelAreAnError) {
  nn::Linear lin(3, 2);
  nn::StateDict sd;
  sd.insert("weight", ones({2, 3}, {.dtype = DType::i32}));
  sd.insert("bias", zeros({2}));
  Tensor before = lin.weight.clone();
  try {
    lin.load_state_dict(sd);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("dtype mismatch"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight (expected f32, got i32)"), std::string::npos) << msg;
  }
  EXPECT_TRUE(test::all_close(lin.weight, before)) << "nothing was copied";
  // Floating dtypes still convert (f64 or f16 checkpoints into an f32 model).
  sd.set("weight", ones({2, 3}, {.dtype = DType::f16}));
  lin.load_state_dict(sd);
  EXPECT_EQ(lin.weight.dtype(), DType::f32);
  // The same for an optimizer's momentum buffers.
  optim::SGD sgd(lin.parameters(), {.lr = 0.1, .momentum = 0.9});
  optim::OptimizerState os = sgd.state_dict();
  os.tensors.set("state.0.momentum_buffer", ones({2, 3}, {.dtype = DType::i64}));
  EXPECT_ERROR(sgd.load_state_dict(os), "momentum buffer 0 is i64");
}

// ---- PyTorch parity: pow's gradient at 0, and scalar type promotion

TEST(ReproPow, GradientAtZeroMatchesPyTorch) {
  // torch: x = [0, 0, 0, 2, 0], y = [0, 2, -1, 0, 0.5]; (x ** y).sum().backward()
  //   x.grad = [0, 0, -inf, 0, inf], y.grad = [0, 0, -inf, ln 2, 0]
  for (DType dt : {DType::f32, DType::f64}) {
    Tensor x = from_vector(std::vector<double>{0, 0, 0, 2, 0}, {5}, {.dtype = dt}).requires_grad_(true);
    Tensor y = from_vector(std::vector<double>{0, 2, -1, 0, 0.5}, {5}, {.dtype = dt}).requires_grad_(true);
    sum(pow(x, y)).backward();
    std::vector<double> gx = x.grad().to(DType::f64).to_vector<double>();
    std::vector<double> gy = y.grad().to(DType::f64).to_vector<double>();
    EXPECT_EQ(gx[0], 0.0);
    EXPECT_EQ(gx[1], 0.0);
    EXPECT_EQ(gx[2], -INFINITY);
    EXPECT_EQ(gx[3], 0.0);
    EXPECT_EQ(gx[4], INFINITY);
    EXPECT_EQ(gy[0], 0.0);
    EXPECT_EQ(gy[1], 0.0);
    EXPECT_EQ(gy[2], -INFINITY);
    EXPECT_NEAR(gy[3], std::log(2.0), 1e-6);
    EXPECT_EQ(gy[4], 0.0);
  }
  // torch: (x ** 0.0).sum().backward() at x = [0, 1, -2]: x.grad = [0, 0, 0]
  Tensor x = from_vector(std::vector<double>{0, 1, -2}, {3}).requires_grad_(true);
  sum(pow(x, 0.0)).backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{0, 0, 0}));
  // Broadcast exponent tensor of 0.
  Tensor x2 = from_vector(std::vector<double>{0, 3}, {2}).requires_grad_(true);
  sum(pow(x2, zeros({}))).backward();
  EXPECT_EQ(x2.grad().to_vector<float>(), (std::vector<float>{0, 0}));
}

TEST(ReproScalar, ResultDtypeDependsOnTheScalarsKindNotItsValue) {
  // torch: int64 tensor * 2.0 -> float32, * 2.5 -> float32, * 2 -> int64, / 2 -> float32,
  // 2.0 * x -> float32, 1.0 - x -> float32, x ** 2.0 -> float32, x ** 2 -> int64;
  // bool + 1 -> int64, bool * 1.5 -> float32; float16 * 2 and * 2.5 -> float16.
  Tensor i = from_vector(std::vector<int64_t>{1, 2, 3}, {3});
  EXPECT_EQ((i * 2.0).dtype(), DType::f32);
  EXPECT_EQ((i * 2.5).dtype(), DType::f32);
  EXPECT_EQ((i * 2).dtype(), DType::i64);
  EXPECT_EQ((i * int64_t(2)).dtype(), DType::i64);
  EXPECT_EQ((i / 2).dtype(), DType::f32);
  EXPECT_EQ((2.0 * i).dtype(), DType::f32);
  EXPECT_EQ((1.0 - i).dtype(), DType::f32);
  EXPECT_EQ((i + 1.0).dtype(), DType::f32);
  EXPECT_EQ((i + 1).dtype(), DType::i64);
  EXPECT_EQ(pow(i, 2.0).dtype(), DType::f32);
  EXPECT_EQ(pow(i, 2).dtype(), DType::i64);
  EXPECT_EQ((i * 2.0f).dtype(), DType::f32);
  EXPECT_EQ((i * 2.0).to_vector<float>(), (std::vector<float>{2, 4, 6}));
  EXPECT_EQ((i * 2).to_vector<int64_t>(), (std::vector<int64_t>{2, 4, 6}));
  Tensor i32 = from_vector(std::vector<int32_t>{1, 2}, {2});
  EXPECT_EQ((i32 * 3).dtype(), DType::i32);
  EXPECT_EQ((i32 * 3.0).dtype(), DType::f32);
  Tensor b = from_vector(std::vector<bool>{true, false}, {2});
  EXPECT_EQ((b + 1).dtype(), DType::i64);
  EXPECT_EQ((b + 2).dtype(), DType::i64);
  EXPECT_EQ((b * 1.5).dtype(), DType::f32);
  EXPECT_EQ((b * 1.0).dtype(), DType::f32);
  Tensor h = ones({2}, {.dtype = DType::f16});
  EXPECT_EQ((h * 2).dtype(), DType::f16);
  EXPECT_EQ((h * 2.5).dtype(), DType::f16);
  // Comparisons give bool either way; an integer tensor compares exactly with a whole number.
  Tensor big = from_vector(std::vector<int64_t>{16777217}, {1});
  EXPECT_EQ(eq(big, 16777216.0).to_vector<bool>(), std::vector<bool>{false});
}

#if EMBER_REPRO_HAS_APP_CONFIG
// ---- the apps' config and command line (apps/common/config.cpp; fuzz/config_fuzz, cli_fuzz):
// every bad input is an app::UsageError (exit 2), never another exception (std::terminate).

app::AppSpec mnist_spec() {
  app::AppSpec s;
  s.name = "mnist";
  s.models = {"lenet", "mlp"};
  s.datasets = {"mnist"};
  return s;
}

/// parse_config on `args` (after argv[0]); "" when it accepted them, else the UsageError's
/// message; another exception escapes and fails the test.
std::string usage_error(std::vector<std::string> args) {
  args.insert(args.begin(), "mnist");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  app::TrainConfig cfg;
  try {
    app::parse_config(int(args.size()), argv.data(), mnist_spec(), cfg);
  } catch (const app::UsageError& e) {
    return e.what();
  }
  return "";
}

TEST(ReproConfig, FolderOrFifoAsConfigIsAUsageError) {
  // The fuzzer's input: its arguments, one per line ("--config" and "/" up to a NUL byte).
  std::string in = read_bytes(repro("cli_config_is_a_directory"));
  ASSERT_EQ(in.rfind("--config\n/", 0), 0u);
  EXPECT_NE(usage_error({"--config", "/"}).find("not a regular file (a directory)"), std::string::npos);
  fs::path dir = fs::temp_directory_path() / ("ember_repro_cfg_" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::path fifo = dir / "fifo.yaml";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_TRUE(finishes_with_error([&] { throw Error(usage_error({"--config", fifo.string()})); }, "not a regular file"));
  EXPECT_NE(usage_error({"--config", (dir / "missing.yaml").string()}).find("cannot open"), std::string::npos);
  fs::remove_all(dir);
}

TEST(ReproConfig, NonScalarKeysAndMilestonesAreUsageErrors) {
  EXPECT_NE(usage_error({"--config", repro("cfg_key_is_a_list.yaml")}).find("expected option names as keys"),
            std::string::npos);
  EXPECT_NE(usage_error({"--config", repro("cfg_milestone_is_a_mapping.yaml")}).find("milestones"),
            std::string::npos);
  // A good file still parses, its milestones list included.
  fs::path good = fs::temp_directory_path() / ("ember_repro_good_" + std::to_string(getpid()) + ".yaml");
  std::ofstream(good) << "epochs: 4\nscheduler: multistep\nmilestones: [1, 3]\n";
  EXPECT_EQ(usage_error({"--config", good.string()}), "");
  fs::remove(good);
}
#endif

}  // namespace
}  // namespace ember
