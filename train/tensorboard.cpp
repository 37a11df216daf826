#include "train/tensorboard.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/tensorboard_event.pb.h"

namespace fs = std::filesystem;

namespace ember::train {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
      t[i] = c;
    }
    return t;
  }();
  return table;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

uint64_t get_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t(uint8_t(p[i])) << (8 * i);
  return v;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& t = crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = t[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

SummaryWriter::SummaryWriter(const std::string& dir) {
  fs::create_directories(dir);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  host[sizeof host - 1] = '\0';
  auto secs = int64_t(now_seconds());
  // Two writers in one second (a quick resume) get distinct files.
  std::string base = (fs::path(dir) / ("events.out.tfevents." + std::to_string(secs) + "." + host)).string();
  path_ = base;
  for (int i = 1; fs::exists(path_); ++i) path_ = base + "." + std::to_string(i);
  f_ = std::fopen(path_.c_str(), "wb");
  EMBER_CHECK(f_ != nullptr, "TensorBoard: cannot create ", path_);
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_file_version("brain.Event:2");
  write_record(e.SerializeAsString());
  flush();
}

SummaryWriter::~SummaryWriter() {
  if (f_) std::fclose(f_);
}

void SummaryWriter::write_record(const std::string& data) {
  std::string rec;
  put_le(rec, data.size(), 8);
  uint32_t len_crc = masked_crc32c(rec.data(), 8);
  put_le(rec, len_crc, 4);
  rec += data;
  put_le(rec, masked_crc32c(data.data(), data.size()), 4);
  EMBER_CHECK(std::fwrite(rec.data(), 1, rec.size(), f_) == rec.size(), "TensorBoard: cannot write ", path_);
}

void SummaryWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  tb::Value* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(float(value));
  write_record(e.SerializeAsString());
}

void SummaryWriter::add_image(const std::string& tag, const std::vector<uint8_t>& png, int height, int width,
                              int channels, int64_t step) {
  tb::Event e;
  e.set_wall_time(now_seconds());
  e.set_step(step);
  tb::Value* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  tb::Image* img = v->mutable_image();
  img->set_height(height);
  img->set_width(width);
  img->set_colorspace(channels);
  img->set_encoded_image_string(std::string(png.begin(), png.end()));
  write_record(e.SerializeAsString());
  flush();
}

void SummaryWriter::flush() {
  if (f_) std::fflush(f_);
}

std::vector<std::string> read_records(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EMBER_CHECK(f.good(), "TensorBoard: cannot open ", path);
  std::string all((std::istreambuf_iterator<char>(f)), {});
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < all.size()) {
    size_t n = out.size();
    EMBER_CHECK(all.size() - pos >= 12, path, ": record ", n, " is truncated (header)");
    uint64_t len = get_le(all.data() + pos, 8);
    uint32_t len_crc = uint32_t(get_le(all.data() + pos + 8, 4));
    EMBER_CHECK(len_crc == masked_crc32c(all.data() + pos, 8), path, ": record ", n, ": wrong length CRC");
    EMBER_CHECK(len <= all.size() - pos - 12 && all.size() - pos - 12 - len >= 4, path, ": record ", n,
                " is truncated (", len, " bytes announced)");
    std::string data = all.substr(pos + 12, size_t(len));
    uint32_t data_crc = uint32_t(get_le(all.data() + pos + 12 + len, 4));
    EMBER_CHECK(data_crc == masked_crc32c(data.data(), data.size()), path, ": record ", n, ": wrong data CRC");
    out.push_back(std::move(data));
    pos += 12 + size_t(len) + 4;
  }
  return out;
}

EventRecord parse_event(const std::string& bytes) {
  tb::Event e;
  EMBER_CHECK(e.ParseFromString(bytes), "TensorBoard: a record is not an Event protobuf");
  EventRecord r;
  r.wall_time = e.wall_time();
  r.step = e.step();
  r.file_version = e.file_version();
  for (const tb::Value& v : e.summary().value()) {
    EventRecord::Value out;
    out.tag = v.tag();
    out.has_simple_value = v.has_simple_value();
    out.simple_value = v.simple_value();
    out.has_image = v.has_image();
    if (out.has_image) {
      out.height = v.image().height();
      out.width = v.image().width();
      out.colorspace = v.image().colorspace();
      out.encoded_image = v.image().encoded_image_string();
    }
    r.values.push_back(std::move(out));
  }
  return r;
}

std::vector<EventRecord> read_events(const std::string& path) {
  std::vector<EventRecord> out;
  for (const std::string& rec : read_records(path)) out.push_back(parse_event(rec));
  return out;
}

}  // namespace ember::train
