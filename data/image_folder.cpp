// ImageFolderDataset: listing, parallel decoding with stb_image, CHW packing.
#include "data/image_folder.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

// stb_image's functions stay internal to this file (no clash with another copy in the process).
// Only the decoders for the extensions this dataset accepts are compiled in: stb picks the
// decoder from the content, so a .png holding a GIF, PSD, TGA, HDR or PIC would otherwise
// reach code nothing here needs.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_PNM
#include <stb/stb_image.h>

namespace fs = std::filesystem;

namespace ember::data {

namespace {

bool is_image_file(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp" || ext == ".ppm" ||
         ext == ".pgm";
}

// Note [Guarding stb_image]
// Debian's stb_image (2.27) has memory-safety bugs reachable from a bad file:
//  - 16-bit PNM (maxval > 255) converted to fewer or more channels runs its 8-bit channel
//    converter over 16-bit data, then reads twice the buffer in stbi__convert_16_to_8
//    (heap-buffer-overflow read). Its 16-bit PNM samples are also read in host byte order
//    (PNM is big-endian), so the pixels would be wrong even without the overflow.
//  - A JPEG DHT (Huffman table) whose 16 code counts sum past 256 writes past the
//    decoder's size[257] and values[256] arrays (out-of-bounds write).
//  - A JPEG scan that uses a Huffman or quantization table no DHT/DQT segment defined
//    decodes with stb's uninitialized (malloc'ed) tables: reads at garbage indices
//    (valgrind sees them; img_jpeg_segv.jpg of the fuzzing run is one such file).
// All are rejected before stb sees the bytes (stbi_info included: it parses the JPEG
// tables too). A PNM header parser follows stb's grammar (and bounds the integers, which
// stb parses into an int without an overflow check). A JPEG marker walker checks every
// DHT segment stb could process and the tables each scan uses: segments are skipped by
// their length, entropy-coded data up to the next marker (0xFF, then a byte other than
// 0x00 or RSTn after 0xFF fill bytes), where stb's bit reader stops. Where the walker and
// stb could disagree, stb fails on its own first (bad lengths, stray 0x00 markers), so the
// walker only has to be at least as thorough as stb. All 60000 CIFAR-10 JPEGs pass, and
// jpegtran's progressive, restart-interval and optimized re-encodings of them.
// Guarding rather than decoding with libjpeg-turbo/libpng keeps the one header-only
// dependency and stb's pixel output bit for bit; the guards cost one pass over the bytes.

[[noreturn]] void bad_image(const std::string& path, const std::string& why) {
  EMBER_THROW("ImageFolderDataset: cannot decode '", path, "': ", why);
}

bool pnm_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// P5/P6 (binary PGM/PPM, what stb reads): width, height and maxval as stb parses them;
// rejects what stb would mis-decode: maxval 0 or > 255, a zero size, numbers that overflow.
void check_pnm(const std::vector<unsigned char>& b, const std::string& path) {
  size_t i = 2;
  auto at = [&](size_t k) -> int { return k < b.size() ? b[k] : -1; };
  int c = at(i++);
  auto skip = [&] {
    for (;;) {
      while (c >= 0 && pnm_space(uint8_t(c))) c = at(i++);
      if (c != '#') break;
      while (c >= 0 && c != '\n' && c != '\r') c = at(i++);
    }
  };
  auto integer = [&](const char* what) {
    int64_t v = 0;
    int digits = 0;
    while (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      if (++digits > 9) bad_image(path, std::string("PNM ") + what + " has too many digits");
      c = at(i++);
    }
    return v;
  };
  skip();
  int64_t w = integer("width");
  skip();
  int64_t h = integer("height");
  skip();
  int64_t maxval = integer("maxval");
  if (w <= 0 || h <= 0)
    bad_image(path, "PNM image of size " + std::to_string(w) + "x" + std::to_string(h) +
                        " (width and height must be positive)");
  if (maxval > 255)
    bad_image(path, "16-bit PNM (maxval " + std::to_string(maxval) +
                        " > 255) is not supported; convert it to 8 bits or PNG");
  if (maxval <= 0) bad_image(path, "PNM maxval must be in [1, 255], got " + std::to_string(maxval));
}

// Walks a JPEG's markers and checks every DHT segment, and that every scan uses only tables
// defined before it (Note [Guarding stb_image]).
void check_jpeg(const std::vector<unsigned char>& b, const std::string& path, size_t after_soi) {
  const size_t n = b.size();
  auto byte = [&](size_t k) -> unsigned { return k < n ? b[k] : 0u; };  // stb reads 0 past EOF
  bool dc[4] = {}, ac[4] = {}, dq[4] = {};
  int comp_tq[256];
  std::fill(std::begin(comp_tq), std::end(comp_tq), -1);
  bool progressive = false;
  size_t i = after_soi;
  while (i < n) {
    // The next marker: skip anything up to 0xFF, then 0xFF fill bytes.
    while (i < n && b[i] != 0xFF) ++i;
    while (i < n && b[i] == 0xFF) ++i;
    if (i >= n) return;
    const unsigned m = b[i++];
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // stuffing, RSTn, TEM
    if (m == 0xD9) return;                                               // EOI: stb stops
    if (m == 0xD8) return;  // a second SOI: stb fails on it
    if (i + 2 > n) return;  // a cut length: stb fails
    const size_t len = size_t(byte(i)) << 8 | byte(i + 1);
    if (len < 2) return;  // stb fails on it
    if (m == 0xC4) {
      // As stb: tables one after another while the segment's remaining length is > 0.
      int64_t L = int64_t(len) - 2;
      size_t p = i + 2;
      while (L > 0) {
        const unsigned q = byte(p), tc = q >> 4, th = q & 15;
        if (tc > 1 || th > 3) return;  // stb fails: bad DHT header
        unsigned total = 0;
        for (int k = 0; k < 16; ++k) total += byte(p + 1 + size_t(k));
        if (total > 256)
          bad_image(path, "corrupt JPEG: a Huffman table (DHT) defines " + std::to_string(total) +
                              " codes, at most 256 are allowed");
        (tc == 0 ? dc : ac)[th] = true;
        p += 17 + total;
        L -= 17 + int64_t(total);
      }
      if (L != 0) return;  // stb fails: bad DHT length
      i = p;
      continue;
    }
    if (m == 0xDB) {  // DQT, as stb reads it
      int64_t L = int64_t(len) - 2;
      size_t p = i + 2;
      while (L > 0) {
        const unsigned q = byte(p), pq = q >> 4, tq = q & 15;
        if (pq > 1 || tq > 3) return;  // stb fails
        dq[tq] = true;
        const int64_t size = pq ? 129 : 65;
        p += size_t(size);
        L -= size;
      }
      if (L != 0) return;  // stb fails: bad DQT length
      i = p;
      continue;
    }
    if (m == 0xC0 || m == 0xC1 || m == 0xC2) {  // the frames stb decodes
      progressive = m == 0xC2;
      const unsigned nf = byte(i + 7);
      for (unsigned k = 0; k < nf; ++k) comp_tq[byte(i + 8 + 3 * k)] = int(byte(i + 10 + 3 * k));
    }
    if (m == 0xDA) {
      // A scan decodes with the Huffman tables stb will use for it (baseline: DC and AC of
      // each component; progressive: DC for a first DC scan, AC for an AC scan) and the
      // components' quantization tables: one never defined is uninitialized memory in stb.
      const unsigned ns = byte(i + 2);
      const unsigned ss = byte(i + 3 + 2 * ns), ah = byte(i + 5 + 2 * ns) >> 4;
      for (unsigned k = 0; k < ns; ++k) {
        const unsigned id = byte(i + 3 + 2 * k), t = byte(i + 4 + 2 * k), td = t >> 4, ta = t & 15;
        if (comp_tq[id] < 0 || comp_tq[id] > 3 || td > 3 || ta > 3) return;  // stb fails
        const bool need_dc = !progressive || (ss == 0 && ah == 0);
        const bool need_ac = !progressive || ss > 0;
        if ((need_dc && !dc[td]) || (need_ac && !ac[ta]))
          bad_image(path, std::string("corrupt JPEG: a scan uses a Huffman table (") +
                              (need_dc && !dc[td] ? "DC " + std::to_string(td) : "AC " + std::to_string(ta)) +
                              ") that no DHT segment defined");
        if (!dq[comp_tq[id]])
          bad_image(path, "corrupt JPEG: a scan uses quantization table " + std::to_string(comp_tq[id]) +
                              " that no DQT segment defined");
      }
    }
    i += len;
    if (m == 0xDA) {
      // SOS: entropy-coded data follows, up to the next marker.
      while (i < n) {
        if (b[i] != 0xFF) {
          ++i;
          continue;
        }
        size_t k = i + 1;
        while (k < n && b[k] == 0xFF) ++k;
        if (k >= n) return;
        if (b[k] == 0x00 || (b[k] >= 0xD0 && b[k] <= 0xD7)) {
          i = k + 1;
          continue;
        }
        i = k - 1;  // at the 0xFF before the marker
        break;
      }
    }
  }
}

// Rejects what stb_image 2.27 would mis-handle, before it sees the bytes.
void guard_stb(const std::vector<unsigned char>& b, const std::string& path) {
  if (b.size() >= 2 && b[0] == 'P' && (b[1] == '5' || b[1] == '6')) check_pnm(b, path);
  // stb finds a JPEG's SOI after any number of 0xFF fill bytes (FF FF .. FF D8), so the
  // walker must too: keyed on FF D8 alone, a file with fill bytes first reached stb
  // unchecked and overflowed its Huffman tables (fuzz/image_fuzz; img_jpeg_fill_before_soi.jpg).
  if (b.size() >= 2 && b[0] == 0xFF) {
    size_t k = 1;
    while (k < b.size() && b[k] == 0xFF) ++k;
    if (k < b.size() && b[k] == 0xD8) check_jpeg(b, path, k + 1);
  }
}

std::vector<unsigned char> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EMBER_CHECK(f.good(), "ImageFolderDataset: cannot open '", path, "'");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), {});
  EMBER_CHECK(!f.bad(), "ImageFolderDataset: cannot read '", path, "'");
  EMBER_CHECK(bytes.size() <= size_t(INT32_MAX), "ImageFolderDataset: '", path, "' is ",
              bytes.size(), " bytes, more than stb_image reads (2 GiB)");
  return bytes;
}

struct Info {
  int width = 0, height = 0;
};

// The size from the header alone (after the guards), without decoding the pixels.
Info probe(const std::string& path) {
  std::vector<unsigned char> bytes = read_file(path);
  guard_stb(bytes, path);
  Info r;
  int native = 0;
  if (!stbi_info_from_memory(bytes.data(), int(bytes.size()), &r.width, &r.height, &native))
    bad_image(path, stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
  if (r.width <= 0 || r.height <= 0)
    bad_image(path, "image of size " + std::to_string(r.width) + "x" + std::to_string(r.height) +
                        " (width and height must be positive)");
  // A decompression bomb: a 373-byte progressive JPEG declaring 65496x8416 kept stb busy
  // for seconds per file and allocated gigabytes (fuzz/image_fuzz). The limit is PIL's
  // (torchvision's loader): more than 2 * 89478485 pixels is a DecompressionBombError.
  constexpr int64_t kMaxPixels = 2 * int64_t(89478485);
  if (int64_t(r.width) * r.height > kMaxPixels)
    bad_image(path, "image of size " + std::to_string(r.width) + "x" + std::to_string(r.height) + " has more than " +
                        std::to_string(kMaxPixels) + " pixels (a decompression bomb?)");
  return r;
}

// Decodes to planar CHW into `out` (width*height*channels bytes), which the caller sized from
// probe(): a file whose pixels disagree with its header is an error, never a short write.
void decode_into(const std::string& path, int channels, const Info& expect, uint8_t* out) {
  std::vector<unsigned char> bytes = read_file(path);
  guard_stb(bytes, path);
  int w = 0, h = 0, native = 0;
  stbi_uc* hwc = stbi_load_from_memory(bytes.data(), int(bytes.size()), &w, &h, &native, channels);
  if (!hwc) bad_image(path, stbi_failure_reason() ? stbi_failure_reason() : "unknown error");
  if (w != expect.width || h != expect.height) {
    stbi_image_free(hwc);
    bad_image(path, "decoded " + std::to_string(w) + "x" + std::to_string(h) +
                        " pixels but its header says " + std::to_string(expect.width) + "x" +
                        std::to_string(expect.height));
  }
  // stb gives interleaved HWC; the datasets keep planar CHW.
  const size_t plane = size_t(w) * size_t(h);
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels; ++c) out[size_t(c) * plane + p] = hwc[p * size_t(channels) + size_t(c)];
  stbi_image_free(hwc);
}

// Runs fn(i) for i in [0, n) on up to 16 threads; rethrows the error of the lowest i that
// failed (the first bad file in order, whatever thread saw it).
void parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  int64_t error_at = n;
  std::mutex error_mu;
  auto work = [&] {
    for (int64_t i; !failed.load() && (i = next.fetch_add(1)) < n;) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mu);
        if (i < error_at) {
          error_at = i;
          error = std::current_exception();
        }
        failed = true;
      }
    }
  };
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  int64_t threads = std::min<int64_t>(std::min<int64_t>(hw, 16), n);
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

struct ImageFolderDataset::Loaded {
  std::vector<std::string> classes, files;
  Tensor images, labels;
  Shape shape;
};

ImageFolderDataset::Loaded ImageFolderDataset::load(const std::string& root, int channels) {
  EMBER_CHECK(channels == 1 || channels == 3, "ImageFolderDataset: channels must be 1 or 3, got ", channels);
  std::error_code ec;
  EMBER_CHECK(fs::is_directory(root, ec), "ImageFolderDataset: '", root, "' is not a directory");
  Loaded l;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) l.classes.push_back(e.path().filename().string());
  std::sort(l.classes.begin(), l.classes.end());
  EMBER_CHECK(!l.classes.empty(), "ImageFolderDataset: '", root,
              "' has no class folders (expected root/<class>/<image>)");
  std::vector<int64_t> labels;
  for (size_t c = 0; c < l.classes.size(); ++c) {
    fs::path dir = fs::path(root) / l.classes[c];
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_image_file(e.path())) files.push_back(e.path().string());
    EMBER_CHECK(!files.empty(), "ImageFolderDataset: class folder '", dir.string(),
                "' holds no image (.jpg, .jpeg, .png, .bmp, .ppm, .pgm)");
    std::sort(files.begin(), files.end());
    for (auto& f : files) {
      l.files.push_back(std::move(f));
      labels.push_back(int64_t(c));
    }
  }
  const int64_t n = int64_t(l.files.size());

  // Every header first (cheap: no pixels are decoded): the sizes must agree before the
  // dataset is allocated, so one large image among bad files cannot ask for n times its
  // size. Then the pixels, decoded in parallel straight into place.
  std::vector<Info> info(static_cast<size_t>(n));
  parallel_for(n, [&](int64_t i) { info[size_t(i)] = probe(l.files[size_t(i)]); });
  const Info first = info[0];
  for (int64_t i = 1; i < n; ++i) {
    const Info& d = info[size_t(i)];
    EMBER_CHECK(d.width == first.width && d.height == first.height, "ImageFolderDataset: '",
                l.files[size_t(i)], "' is ", d.width, "x", d.height, " but '", l.files[0], "' is ",
                first.width, "x", first.height, "; all images must have the same size");
  }
  const int64_t row = int64_t(channels) * first.height * first.width;
  l.shape = {channels, first.height, first.width};
  try {
    l.images = empty({n, channels, first.height, first.width}, {.dtype = DType::u8});
  } catch (const std::bad_alloc&) {
    EMBER_THROW("ImageFolderDataset: '", root, "': ", n, " images of ", first.width, "x",
                first.height, "x", channels, " need ", n * row, " bytes: out of memory");
  }
  uint8_t* out = l.images.data<uint8_t>();
  parallel_for(n, [&](int64_t i) { decode_into(l.files[size_t(i)], channels, first, out + i * row); });

  l.labels = empty({n}, {.dtype = DType::i64});
  std::copy(labels.begin(), labels.end(), l.labels.data<int64_t>());
  return l;
}

ImageFolderDataset::ImageFolderDataset(const std::string& root, Normalize normalize, int channels)
    : ImageFolderDataset(load(root, channels), std::move(normalize)) {}

ImageFolderDataset::ImageFolderDataset(Loaded&& l, Normalize normalize)
    : ImageTensorDataset(l.images, l.labels, l.shape, std::move(normalize)),
      classes_(std::move(l.classes)),
      files_(std::move(l.files)) {}

}  // namespace ember::data
