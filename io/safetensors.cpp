// safetensors reader and atomic writer. JSON stays in this file (nlohmann, private).
#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "autograd/grad_mode.h"

namespace ember {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; ember reads it on little-endian hosts only");

namespace {

using ojson = nlohmann::ordered_json;

// The reference implementation refuses headers above 100 MB; so do we (a corrupt length
// field would otherwise ask for gigabytes).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

std::string errno_str(int e) { return std::strerror(e); }

// Reads exactly n bytes at `offset`; returns the number read (short only at end of file).
int64_t pread_all(int fd, void* buf, int64_t n, int64_t offset) {
  int64_t done = 0;
  auto* p = static_cast<char*>(buf);
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, size_t(n - done), off_t(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) break;
    done += r;
  }
  return done;
}

bool write_all(int fd, const void* buf, int64_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd, p, size_t(n));
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= w;
  }
  return true;
}

std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
    case DType::b8: return "BOOL";
  }
  EMBER_THROW("safetensors: dtype ", dtype_name(t), " has no safetensors name");
}

DType dtype_from_safetensors_name(const std::string& name) {
  for (DType t : {DType::f32, DType::f64, DType::f16, DType::bf16, DType::i32, DType::i64,
                  DType::u8, DType::b8}) {
    if (name == safetensors_dtype_name(t)) return t;
  }
  EMBER_THROW("unknown safetensors dtype '", name,
              "' (ember reads F32, F64, F16, BF16, I32, I64, U8, BOOL)");
}

bool SafetensorsFile::contains(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return true;
  }
  return false;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  std::string all;
  for (const auto& [n, t] : tensors) all += (all.empty() ? "" : ", ") + n;
  EMBER_THROW("safetensors: no tensor named '", name, "' (the file holds: ",
              all.empty() ? "nothing" : all, ")");
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> r;
  for (const auto& [n, t] : tensors) r.push_back(n);
  return r;
}

// ---- writing

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = "save_safetensors('" + path + "'): ";
  NoGradGuard no_grad;

  // CPU, contiguous copies where needed; names checked before anything touches the disk.
  std::vector<Tensor> data;
  data.reserve(tensors.size());
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    EMBER_CHECK(!name.empty(), where, "empty tensor name");
    EMBER_CHECK(name != "__metadata__", where, "'__metadata__' is reserved, not a tensor name");
    EMBER_CHECK(seen.insert(name).second, where, "duplicate tensor name '", name, "'");
    EMBER_CHECK(t.defined(), where, "tensor '", name, "' is undefined");
    Tensor c = t.detach();
    if (!c.device().is_cpu()) c = c.to(kCPU);
    data.push_back(c.contiguous());
  }

  ojson header = ojson::object();
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = data[i];
    uint64_t nbytes = uint64_t(t.nbytes());
    header[tensors[i].first] = {{"dtype", safetensors_dtype_name(t.dtype())},
                                {"shape", t.shape()},
                                {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference does.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t n = text.size();
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = uint8_t(n >> (8 * i));

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Fd f;
  f.fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EMBER_CHECK(f.fd >= 0, where, "cannot create the temporary file '", tmp, "': ", errno_str(errno));
  auto fail = [&](const char* what, int err) {
    ::close(f.release());
    ::unlink(tmp.c_str());
    EMBER_THROW(where, what, " '", tmp, "' failed: ", errno_str(err), " (", path,
                " was left unchanged)");
  };
  if (!write_all(f.fd, len_bytes, 8) || !write_all(f.fd, text.data(), int64_t(n))) {
    fail("writing the header to", errno);
  }
  for (const Tensor& t : data) {
    if (t.nbytes() > 0) {
      // ember's bool is one byte holding 0 or 1, exactly safetensors' BOOL.
      if (!write_all(f.fd, t.data_ptr(), t.nbytes())) fail("writing tensor data to", errno);
    }
  }
  if (::fsync(f.fd) != 0) fail("fsync of", errno);
  if (::close(f.release()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    EMBER_THROW(where, "closing '", tmp, "' failed: ", errno_str(e), " (", path,
                " was left unchanged)");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    EMBER_THROW(where, "renaming '", tmp, "' to '", path, "' failed: ", errno_str(e));
  }
  // Make the rename itself durable. Some file systems cannot fsync a directory; the file
  // is in place by now, so that is not an error.
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

// ---- reading

SafetensorsFile load_safetensors(const std::string& path) {
  const std::string where = "safetensors file '" + path + "': ";
  Fd f;
  // O_NONBLOCK: opening a FIFO (or a device) must not wait for a writer; only regular files
  // are read, and for them the flag changes nothing.
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  EMBER_CHECK(f.fd >= 0, where, "cannot open: ", errno_str(errno));
  struct stat st {};
  EMBER_CHECK(::fstat(f.fd, &st) == 0, where, "cannot stat: ", errno_str(errno));
  EMBER_CHECK(S_ISREG(st.st_mode), where, "not a regular file",
              S_ISFIFO(st.st_mode) ? " (a FIFO)" : S_ISDIR(st.st_mode) ? " (a directory)" : "");
  const uint64_t file_size = uint64_t(st.st_size);
  EMBER_CHECK(file_size >= 8, where, "truncated: ", file_size,
              " bytes, too short for the 8-byte header length");

  unsigned char len_bytes[8];
  EMBER_CHECK(pread_all(f.fd, len_bytes, 8, 0) == 8, where, "cannot read the header length: ",
              errno_str(errno));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(len_bytes[i]) << (8 * i);
  EMBER_CHECK(n <= file_size - 8, where, "header length ", n, " runs past the end of the file (",
              file_size, " bytes): truncated or not a safetensors file");
  EMBER_CHECK(n <= kMaxHeaderBytes, where, "header length ", n, " exceeds the limit of ",
              kMaxHeaderBytes, " bytes: corrupt or not a safetensors file");
  std::string text(size_t(n), '\0');
  EMBER_CHECK(pread_all(f.fd, text.data(), int64_t(n), 8) == int64_t(n), where,
              "cannot read the ", n, "-byte header: ", errno_str(errno));
  const uint64_t data_start = 8 + n;
  const uint64_t data_size = file_size - data_start;

  // Duplicate top-level keys would silently replace each other in the parsed object.
  std::set<std::string> keys;
  std::string duplicate;
  auto on_event = [&](int depth, ojson::parse_event_t ev, ojson& parsed) {
    if (depth == 1 && ev == ojson::parse_event_t::key) {
      std::string k = parsed.get<std::string>();
      if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  ojson header;
  try {
    header = ojson::parse(text, on_event);
  } catch (const nlohmann::json::exception& e) {
    EMBER_THROW(where, "the header is not valid JSON (", e.what(), ")");
  }
  EMBER_CHECK(header.is_object(), where, "the header must be a JSON object, got ",
              header.type_name());
  EMBER_CHECK(duplicate.empty(), where, "the header names '", duplicate, "' twice");

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      EMBER_CHECK(v.is_object(), where, "__metadata__ must be an object of strings, got ",
                  v.type_name());
      for (const auto& [k, s] : v.items()) {
        EMBER_CHECK(s.is_string(), where, "__metadata__['", k, "'] must be a string, got ",
                    s.type_name());
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string what = where + "tensor '" + name + "': ";
    EMBER_CHECK(v.is_object(), what, "expected an object with dtype, shape and data_offsets, got ",
                v.type_name());
    EMBER_CHECK(v.contains("dtype") && v["dtype"].is_string(), what, "missing string 'dtype'");
    EMBER_CHECK(v.contains("shape") && v["shape"].is_array(), what, "missing array 'shape'");
    EMBER_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() &&
                    v["data_offsets"].size() == 2,
                what, "missing 'data_offsets' as [begin, end]");
    Entry e;
    e.name = name;
    try {
      e.dtype = dtype_from_safetensors_name(v["dtype"].get<std::string>());
    } catch (const Error& err) {
      EMBER_THROW(what, err.what());
    }
    // Count in 128 bits: a corrupt shape must give an error, not an overflow.
    unsigned __int128 numel = 1;
    for (const auto& d : v["shape"]) {
      EMBER_CHECK(d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(INT64_MAX), what,
                  "shape entries must be non-negative integers, got ", d.dump());
      e.shape.push_back(int64_t(d.get<uint64_t>()));
      numel *= d.get<uint64_t>();
      if (numel > data_size) numel = uint64_t(data_size) + 1;  // saturate; rejected below
    }
    for (const auto& o : v["data_offsets"]) {
      EMBER_CHECK(o.is_number_unsigned(), what, "data_offsets must be non-negative integers, got ",
                  v["data_offsets"].dump());
    }
    e.begin = v["data_offsets"][0].get<uint64_t>();
    e.end = v["data_offsets"][1].get<uint64_t>();
    EMBER_CHECK(e.begin <= e.end, what, "data_offsets [", e.begin, ", ", e.end,
                ") end before they begin");
    EMBER_CHECK(e.end <= data_size, what, "data_offsets [", e.begin, ", ", e.end,
                ") run past the data section (", data_size, " bytes): truncated file?");
    unsigned __int128 want128 = numel * uint64_t(dtype_size(e.dtype));
    EMBER_CHECK(want128 <= data_size, what, "shape ", shape_str(e.shape), " of ",
                safetensors_dtype_name(e.dtype), " needs more bytes than the data section has (",
                data_size, ")");
    // An empty shape such as [2^62, 2^62, 0] fits the data section but not int64 strides.
    try {
      (void)contiguous_strides(e.shape);
      (void)shape_numel(e.shape);
    } catch (const Error& err) {
      EMBER_THROW(what, err.what());
    }
    uint64_t want = uint64_t(want128);
    EMBER_CHECK(e.end - e.begin == want, what, "data_offsets [", e.begin, ", ", e.end, ") span ",
                e.end - e.begin, " bytes but shape ", shape_str(e.shape), " of ",
                safetensors_dtype_name(e.dtype), " needs ", want);
    entries.push_back(std::move(e));
  }

  // Like the reference: the tensors tile the data section exactly, no gaps or overlaps.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  uint64_t pos = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.begin < pos) {
      EMBER_THROW(where, "tensors '", entries[i - 1].name, "' and '", e.name,
                  "' overlap (data_offsets [", entries[i - 1].begin, ", ", entries[i - 1].end,
                  ") and [", e.begin, ", ", e.end, "))");
    }
    EMBER_CHECK(e.begin == pos, where, "gap in the data section before tensor '", e.name,
                "' (bytes [", pos, ", ", e.begin, ") belong to no tensor)");
    pos = e.end;
  }
  EMBER_CHECK(pos == data_size, where, "the data section has ", data_size,
              " bytes but the tensors cover ", pos, " (trailing bytes or a wrong header)");

  for (const Entry& e : entries) {
    Tensor t = empty(e.shape, {.dtype = e.dtype});
    int64_t nb = int64_t(e.end - e.begin);
    if (nb > 0) {
      int64_t got = pread_all(f.fd, t.data_ptr(), nb, int64_t(data_start + e.begin));
      EMBER_CHECK(got == nb, where, "reading tensor '", e.name, "' failed: ",
                  got < 0 ? errno_str(errno) : "file shrank while reading");
    }
    if (e.dtype == DType::b8) {
      // Any non-zero byte is true; keep ember's 0/1 invariant for bool.
      auto* p = static_cast<uint8_t*>(t.data_ptr());
      for (int64_t i = 0; i < nb; ++i) p[i] = p[i] != 0;
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace ember
