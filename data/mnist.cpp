// idx reader (raw or gzip through zlib) and the MNIST / Fashion-MNIST dataset.
#include "data/mnist.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>

namespace ember::data {

namespace {

constexpr uint32_t kIdxImages = 0x00000803;  // u8, 3 dims
constexpr uint32_t kIdxLabels = 0x00000801;  // u8, 1 dim
// Refuse absurd headers before allocating (a corrupt count would otherwise ask for TBs).
constexpr int64_t kMaxPayload = int64_t(1) << 34;

// Reads a raw or gzip file through zlib (gzread passes raw files through unchanged).
class IdxFile {
 public:
  explicit IdxFile(const std::string& path) : path_(path) {
    // O_NONBLOCK: a FIFO or a device must not block the open; only regular files are read.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      int e = errno;
      EMBER_THROW("idx file '", path, "': cannot open: ", std::strerror(e));
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int e = errno;
      ::close(fd);
      EMBER_THROW("idx file '", path, "': cannot stat: ", std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      EMBER_THROW("idx file '", path, "': not a regular file",
                  S_ISFIFO(st.st_mode) ? " (a FIFO)" : S_ISDIR(st.st_mode) ? " (a directory)" : "");
    }
    size_ = int64_t(st.st_size);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    errno = 0;
    f_ = gzdopen(fd, "rb");
    if (!f_) {
      int e = errno;
      ::close(fd);
      EMBER_THROW("idx file '", path, "': cannot open: ",
                  e ? std::strerror(e) : "out of memory in zlib");
    }
    gzbuffer(f_, 1 << 20);
  }
  ~IdxFile() {
    if (f_) gzclose(f_);
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. Corrupt gzip data throws.
  int64_t read(void* buf, int64_t n) {
    int64_t done = 0;
    auto* p = static_cast<char*>(buf);
    while (done < n) {
      unsigned chunk = unsigned(std::min<int64_t>(n - done, 1 << 30));
      int r = gzread(f_, p + done, chunk);
      if (r < 0) {
        int code = 0;
        const char* msg = gzerror(f_, &code);
        EMBER_THROW("idx file '", path_, "': corrupt gzip data (", msg ? msg : "unknown zlib error",
                    ")");
      }
      if (r == 0) break;
      done += r;
    }
    return done;
  }
  // Why a read came up short: zlib's message for a cut gzip stream, else "".
  std::string short_reason() {
    int code = 0;
    const char* msg = gzerror(f_, &code);
    return code != Z_OK && msg && *msg ? std::string(" (") + msg + ")" : std::string();
  }
  bool is_gzip() { return gzdirect(f_) == 0; }
  const std::string& path() const { return path_; }
  int64_t file_size() const { return size_; }

 private:
  std::string path_;
  gzFile f_ = nullptr;
  int64_t size_ = 0;
};

// Deflate cannot expand more than 1032:1 (a 258-byte match in 2 bits); a gzip file that
// claims more decompressed bytes than that is corrupt, whatever its data says.
constexpr int64_t kMaxDeflateRatio = 1032;

uint32_t be32(const unsigned char* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Reads a u8 idx file with `ndims` dims: returns the dims and fills a u8 tensor. `check_dims`
// (optional) vets the header's dims before any data is read or memory allocated.
Tensor read_idx_u8(const std::string& path, uint32_t magic, int ndims, const char* kind,
                   const std::function<void(const Shape&)>& check_dims = {}) {
  IdxFile f(path);
  const int64_t header_bytes = 4 + 4 * int64_t(ndims);
  unsigned char header[16];
  // The magic number first: a wrong kind of file gets that error, not a size complaint.
  int64_t got = f.read(header, 4);
  EMBER_CHECK(got == 4, "idx file '", path, "': truncated: ", got, " bytes, too short for the ",
              header_bytes, "-byte header of an ", kind, " file", f.short_reason());
  uint32_t m = be32(header);
  if (m != magic) {
    std::string hint;
    if (m == kIdxImages) hint = " (this is an idx3 image file)";
    if (m == kIdxLabels) hint = " (this is an idx1 label file)";
    if ((m >> 16) == 0x1f8b) hint = " (a gzip stream inside the gzip file: decompress it once)";
    EMBER_THROW("idx file '", path, "': bad magic number ", hex32(m), ", expected ", hex32(magic),
                " for an ", kind, " file", hint);
  }
  got = 4 + f.read(header + 4, header_bytes - 4);
  EMBER_CHECK(got == header_bytes, "idx file '", path, "': truncated: ", got,
              " bytes, too short for the ", header_bytes, "-byte header of an ", kind, " file",
              f.short_reason());
  Shape dims;
  for (int d = 0; d < ndims; ++d) dims.push_back(int64_t(be32(header + 4 + 4 * d)));
  // Checked: the product of the non-zero dims (it bounds the strides even when a dim is 0)
  // must stay under the limit; each factor is < 2^32 and the running product <= 2^34.
  int64_t payload = 1, nonzero = 1;
  for (int64_t v : dims) {
    if (v != 0 && (__builtin_mul_overflow(nonzero, v, &nonzero) || nonzero > kMaxPayload)) {
      EMBER_THROW("idx file '", path, "': header dims ", shape_str(dims), " describe more than ",
                  kMaxPayload, " bytes: corrupt header");
    }
    payload = v == 0 ? 0 : payload * v;
  }
  if (check_dims) check_dims(dims);
  const bool gzip = f.is_gzip();
  if (!gzip) {
    int64_t expect = header_bytes + payload;
    EMBER_CHECK(f.file_size() == expect, "idx file '", path, "': ",
                f.file_size() < expect ? "truncated" : "trailing bytes", ": the header ",
                shape_str(dims), " needs ", expect, " bytes but the file has ", f.file_size());
  } else {
    const int64_t most = kMaxDeflateRatio * f.file_size();
    EMBER_CHECK(header_bytes + payload <= most, "idx file '", path, "': corrupt header: its dims ",
                shape_str(dims), " need ", header_bytes + payload, " bytes but a ", f.file_size(),
                "-byte gzip file decompresses to at most ", most);
  }
  Tensor t;
  if (!gzip) {
    t = empty(dims, {.dtype = DType::u8});
    got = f.read(t.data_ptr(), payload);
  } else {
    // Memory follows what actually decompresses, not what the header claims.
    std::vector<uint8_t> buf;
    got = 0;
    while (got < payload) {
      int64_t want = std::min<int64_t>(payload - got, std::max<int64_t>(got, int64_t(1) << 20));
      buf.resize(size_t(got + want));
      int64_t r = f.read(buf.data() + got, want);
      got += r;
      if (r < want) break;
    }
    if (got == payload) {
      t = empty(dims, {.dtype = DType::u8});
      if (payload > 0) std::memcpy(t.data_ptr(), buf.data(), size_t(payload));
    }
  }
  EMBER_CHECK(got == payload, "idx file '", path, "': truncated: the header ", shape_str(dims),
              " needs ", payload, " data bytes but only ", got, " follow", f.short_reason());
  unsigned char extra;
  EMBER_CHECK(f.read(&extra, 1) == 0, "idx file '", path, "': trailing bytes after the ", payload,
              " data bytes that the header ", shape_str(dims), " describes");
  return t;
}

void check_mnist_image_dims(const std::string& path, const Shape& s) {
  EMBER_CHECK(s[1] == 28 && s[2] == 28, "idx file '", path, "': images are ", s[1], "x", s[2],
              ", expected 28x28 for MNIST");
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  return read_idx_u8(path, kIdxImages, 3, "idx3 image");
}

Tensor read_idx_labels(const std::string& path) {
  return read_idx_u8(path, kIdxLabels, 1, "idx1 label").to(DType::i64);
}

std::string find_data_file(const std::string& dir, const std::string& name,
                           const std::string& dataset) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const std::string& cand : {name, name + ".gz"}) {
    fs::path p = fs::path(dir) / cand;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  EMBER_CHECK(fs::is_directory(dir, ec), dataset, ": data directory '", dir,
              "' does not exist (get the data with scripts/get_data.sh ", dataset, " ", dir, ")");
  EMBER_THROW(dataset, ": neither ", name, " nor ", name, ".gz is in '", dir,
              "' (get the data with scripts/get_data.sh ", dataset, " ", dir, ")");
}

struct MnistDataset::Loaded {
  std::string images_path, labels_path;
  Tensor images, labels;
};

MnistDataset::MnistDataset(const std::string& dir, bool train, Normalize normalize)
    : MnistDataset(load(dir, train), std::move(normalize)) {}

MnistDataset::MnistDataset(Loaded&& l, Normalize normalize)
    : ImageTensorDataset(l.images, l.labels, {1, 28, 28}, std::move(normalize)),
      images_path_(std::move(l.images_path)),
      labels_path_(std::move(l.labels_path)) {}

MnistDataset::Loaded MnistDataset::load(const std::string& dir, bool train) {
  const std::string split = train ? "train" : "t10k";
  MnistDataset::Loaded l;
  l.images_path = find_data_file(dir, split + "-images-idx3-ubyte", "mnist");
  l.labels_path = find_data_file(dir, split + "-labels-idx1-ubyte", "mnist");
  // The image size is checked from the header, before the data is read.
  l.images = read_idx_u8(l.images_path, kIdxImages, 3, "idx3 image",
                         [&](const Shape& s) { check_mnist_image_dims(l.images_path, s); });
  l.labels = read_idx_labels(l.labels_path);
  const Shape& s = l.images.shape();
  EMBER_CHECK(s[0] == l.labels.size(0), "mnist: '", l.images_path, "' holds ", s[0],
              " images but '", l.labels_path, "' holds ", l.labels.size(0), " labels");
  const int64_t* lab = l.labels.data<int64_t>();
  for (int64_t i = 0; i < l.labels.size(0); ++i) {
    EMBER_CHECK(lab[i] >= 0 && lab[i] < 10, "idx file '", l.labels_path, "': label ", lab[i],
                " at index ", i, " is not a class in [0, 9]");
  }
  return l;
}

}  // namespace ember::data
