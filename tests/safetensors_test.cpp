// safetensors: round trips, the exact byte layout, validation errors, atomic writes.
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace ember;

namespace {

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ember_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  static std::string read_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  static void write_bytes(const std::string& p, const std::string& bytes) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), std::streamsize(bytes.size()));
  }
  // A file made by hand: length prefix, header text as given (no padding), data.
  static std::string make_file(const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(n >> (8 * i)));
    return out + header + data;
  }
  // Expects load_safetensors(p) to throw an error naming the file and containing `what`.
  static void expect_load_error(const std::string& p, const std::string& what) {
    try {
      load_safetensors(p);
      ADD_FAILURE() << "no error loading " << p << " (expected '" << what << "')";
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << "message does not name the file: " << msg;
      EXPECT_NE(msg.find(what), std::string::npos) << "expected '" << what << "' in: " << msg;
    }
  }
  static bool same_bytes(const Tensor& a, const Tensor& b) {
    if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
    if (a.nbytes() == 0) return true;  // empty tensors have no storage: memcmp(nullptr, ...) is UB
    return std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), size_t(a.nbytes())) == 0;
  }

  fs::path dir_;
};

TEST_F(SafetensorsTest, RoundTripEveryDtypeScalarEmptyAndMetadata) {
  std::vector<std::pair<std::string, Tensor>> ts = {
      {"f32", from_vector<float>({1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 7.0f}, {2, 3})},
      {"f64", from_vector<double>({3.141592653589793, -1e300}, {2})},
      {"f16", from_vector<float>({0.5f, -65504.0f, 1e-7f}, {3}).to(DType::f16)},
      {"bf16", from_vector<float>({1.0f, -3.0e38f, 0.1f, 2.0f}, {2, 2}).to(DType::bf16)},
      {"i32", from_vector<int32_t>({INT32_MIN, -1, 0, INT32_MAX}, {4, 1})},
      {"i64", from_vector<int64_t>({INT64_MIN, 42, INT64_MAX}, {3})},
      {"u8", from_vector<uint8_t>({0, 1, 128, 255}, {1, 2, 2})},
      {"bool", from_vector<bool>({true, false, true}, {3})},
      {"scalar", scalar_tensor(2.5, {.dtype = DType::f64})},
      {"empty", empty({0, 4}, {.dtype = DType::i64})},
      {"model.conv1.weight", randn({6, 1, 5, 5})},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"epoch", "3"},
                                             {"json", "{\"lr\": 0.01, \"s\": \"a\\\"b\"}"}};
  const std::string p = path("all.safetensors");
  save_safetensors(p, ts, meta);
  SafetensorsFile f = load_safetensors(p);
  ASSERT_EQ(f.tensors.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    EXPECT_EQ(f.tensors[i].first, ts[i].first) << "order is kept";
    EXPECT_TRUE(same_bytes(f.tensors[i].second, ts[i].second)) << ts[i].first;
    EXPECT_TRUE(f.tensors[i].second.device().is_cpu());
  }
  EXPECT_EQ(f.metadata, meta);
  EXPECT_EQ(f.at("scalar").dim(), 0);
  EXPECT_EQ(f.at("scalar").item<double>(), 2.5);
  EXPECT_EQ(f.at("empty").shape(), (Shape{0, 4}));
  EXPECT_TRUE(f.contains("u8"));
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_THROW(f.at("nope"), Error);

  // The data section starts 8-byte aligned (header padded with spaces).
  std::string bytes = read_bytes(p);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
}

TEST_F(SafetensorsTest, NoTensorsAndNoMetadata) {
  const std::string p = path("none.safetensors");
  save_safetensors(p, {});
  SafetensorsFile f = load_safetensors(p);
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
  EXPECT_EQ(read_bytes(p), make_file("{}      ", ""));
}

TEST_F(SafetensorsTest, NonContiguousIsWrittenContiguously) {
  Tensor x = from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor xt = make_view(x, {3, 2}, {1, 3}, 0);  // the transpose, (3, 2)
  ASSERT_FALSE(xt.is_contiguous());
  const std::string p = path("t.safetensors");
  save_safetensors(p, {{"xt", xt}});
  Tensor y = load_safetensors(p).at("xt");
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST_F(SafetensorsTest, ByteExactLayoutOfOneTensor) {
  // Written by hand from the format description: the reference writes the keys of a
  // tensor in the order dtype, shape, data_offsets, compact JSON, padded to 8 bytes.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);
  std::string expected = make_file(header + "  ", "");  // 56 = 7 * 8
  float vals[2] = {1.0f, -2.0f};
  expected.append(reinterpret_cast<const char*>(vals), 8);
  ASSERT_EQ(expected.substr(0, 8), std::string("\x38\0\0\0\0\0\0\0", 8));
  const std::string p = path("w.safetensors");
  save_safetensors(p, {{"w", from_vector<float>({1.0f, -2.0f})}});
  EXPECT_EQ(read_bytes(p), expected);

  // With metadata, "__metadata__" comes first.
  save_safetensors(p, {{"w", from_vector<float>({1.0f, -2.0f})}}, {{"k", "v"}});
  const std::string header2 =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string pad((8 - header2.size() % 8) % 8, ' ');
  EXPECT_EQ(read_bytes(p), make_file(header2 + pad, std::string(reinterpret_cast<const char*>(vals), 8)));
}

TEST_F(SafetensorsTest, ReadsAHandBuiltFile) {
  // Keys out of data order, spaces in the JSON, no padding: all legal.
  const std::string header =
      R"({ "b": {"dtype": "I64", "shape": [1], "data_offsets": [2, 10]},)"
      R"( "a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},)"
      R"( "__metadata__": {"name": "x"} })";
  std::string data = {char(7), char(200)};
  int64_t v = -5;
  data.append(reinterpret_cast<const char*>(&v), 8);
  const std::string p = path("hand.safetensors");
  write_bytes(p, make_file(header, data));
  SafetensorsFile f = load_safetensors(p);
  ASSERT_EQ(f.names(), (std::vector<std::string>{"a", "b"}));  // data order
  EXPECT_EQ(f.at("a").to_vector<uint8_t>(), (std::vector<uint8_t>{7, 200}));
  EXPECT_EQ(f.at("b").to_vector<int64_t>(), (std::vector<int64_t>{-5}));
  EXPECT_EQ(f.metadata.at("name"), "x");
}

TEST_F(SafetensorsTest, TruncatedFilesAreClearErrors) {
  const std::string p = path("cut.safetensors");
  save_safetensors(p, {{"w", randn({16})}, {"b", randn({4})}});
  const std::string full = read_bytes(p);

  write_bytes(p, full.substr(0, 5));
  expect_load_error(p, "too short");
  write_bytes(p, full.substr(0, 20));
  expect_load_error(p, "runs past the end of the file");
  write_bytes(p, full.substr(0, full.size() - 3));  // data cut short
  expect_load_error(p, "run past the data section");
  write_bytes(p, "");
  expect_load_error(p, "too short");
  expect_load_error(path("missing.safetensors"), "cannot open");
}

TEST_F(SafetensorsTest, CorruptHeadersAreClearErrors) {
  const std::string p = path("bad.safetensors");
  const std::string four(4, '\0');
  auto check = [&](const std::string& header, const std::string& data, const std::string& what) {
    write_bytes(p, make_file(header, data));
    expect_load_error(p, what);
  };
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4])", four, "not valid JSON");
  check("\x01\x02garbage", four, "not valid JSON");
  check(R"([1, 2])", four, "must be a JSON object");
  check(R"({"a": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", four,
        "unknown safetensors dtype 'F8_E4M3'");
  check(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", four,
        "non-negative integers");
  check(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", four, "missing array 'shape'");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": 1})", four,
        "names 'a' twice");
  check(R"({"__metadata__": {"k": 1}})", "", "must be a string");
  check(R"({"a": {"dtype": "F32", "shape": [1000000000000, 1000000000000], "data_offsets": [0, 4]}})",
        four, "needs more bytes than the data section has");
  // Header length field far beyond the file.
  std::string huge(8, '\xff');
  write_bytes(p, huge + "{}");
  expect_load_error(p, "runs past the end of the file");
}

TEST_F(SafetensorsTest, BadOffsetsAreClearErrors) {
  const std::string p = path("off.safetensors");
  const std::string eight(8, '\0');
  auto check = [&](const std::string& header, const std::string& data, const std::string& what) {
    write_bytes(p, make_file(header, data));
    expect_load_error(p, what);
  };
  // Size does not match shape * dtype.
  check(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight + eight,
        "span 8 bytes but shape [3] of F32 needs 12");
  // Past the end of the data.
  check(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", eight,
        "run past the data section");
  // Reversed.
  check(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", eight,
        "end before they begin");
  // Overlapping tensors.
  check(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
        R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
        eight, "overlap");
  // A gap, and trailing bytes nobody owns.
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", eight, "gap");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", eight,
        "trailing bytes");
}

TEST_F(SafetensorsTest, InvalidTensorListsAreRejectedBeforeWriting) {
  const std::string p = path("x.safetensors");
  Tensor t = ones({2});
  EXPECT_THROW(save_safetensors(p, {{"a", t}, {"a", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"__metadata__", t}}), Error);
  EXPECT_THROW(save_safetensors(p, {{"u", Tensor()}}), Error);
  EXPECT_FALSE(fs::exists(p));
}

TEST_F(SafetensorsTest, FailedWriteLeavesTheOldFileIntact) {
  const std::string p = path("ckpt.safetensors");
  save_safetensors(p, {{"w", from_vector<float>({1, 2, 3})}}, {{"v", "old"}});
  const std::string old = read_bytes(p);

  // 1) The temporary file cannot be created (a directory sits at its name).
  const std::string tmp = p + ".tmp." + std::to_string(::getpid());
  fs::create_directory(tmp);
  try {
    save_safetensors(p, {{"w", zeros({3})}}, {{"v", "new"}});
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
  fs::remove(tmp);
  EXPECT_EQ(read_bytes(p), old);

  // 2) The disk "fills up" in the middle of the data: a file size limit makes write()
  // fail with EFBIG (SIGXFSZ ignored) after the header went out.
  struct rlimit saved {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto prev = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  EXPECT_THROW(save_safetensors(p, {{"big", zeros({100000})}}), Error);
  setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, prev);
  EXPECT_EQ(read_bytes(p), old);

  // 3) The directory does not exist.
  EXPECT_THROW(save_safetensors(path("no/such/dir/x.safetensors"), {{"w", ones({1})}}), Error);

  // No temporary files are left behind, and the old file still loads.
  for (const auto& e : fs::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
  }
  SafetensorsFile f = load_safetensors(p);
  EXPECT_EQ(f.metadata.at("v"), "old");
  EXPECT_EQ(f.at("w").to_vector<float>(), (std::vector<float>{1, 2, 3}));

  // And a successful overwrite replaces it.
  save_safetensors(p, {{"w", zeros({3})}}, {{"v", "new"}});
  EXPECT_EQ(load_safetensors(p).metadata.at("v"), "new");
}

TEST_F(SafetensorsTest, DtypeNames) {
  EXPECT_STREQ(safetensors_dtype_name(DType::bf16), "BF16");
  EXPECT_STREQ(safetensors_dtype_name(DType::b8), "BOOL");
  EXPECT_EQ(dtype_from_safetensors_name("I64"), DType::i64);
  EXPECT_THROW(dtype_from_safetensors_name("f32"), Error);  // names are upper case
}

}  // namespace
