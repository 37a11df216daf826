#pragma once
// TensorBoard event files: `events.out.tfevents.<unix time>.<host>` in a folder, a sequence
// of TFRecords (uint64 length, masked CRC32C of the length, the bytes, masked CRC32C of
// the bytes; little-endian) each holding a serialized Event protobuf. The first event
// carries file_version "brain.Event:2"; the others a Summary of scalars or PNG images.
// `tensorboard --logdir DIR` shows them.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace ember::train {

/// CRC-32C (Castagnoli), continuing from `crc` (0 to start).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
/// TFRecord's masked CRC: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

class SummaryWriter {
 public:
  /// Creates `dir` and a new event file in it (one per writer), and writes the version event.
  explicit SummaryWriter(const std::string& dir);
  ~SummaryWriter();
  SummaryWriter(const SummaryWriter&) = delete;
  SummaryWriter& operator=(const SummaryWriter&) = delete;

  void add_scalar(const std::string& tag, double value, int64_t step);
  /// `png`: an encoded PNG of height x width x channels.
  void add_image(const std::string& tag, const std::vector<uint8_t>& png, int height, int width, int channels,
                 int64_t step);
  void flush();
  /// The event file.
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::FILE* f_ = nullptr;
};

/// One event as read back.
struct EventRecord {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;  // the first event only
  struct Value {
    std::string tag;
    bool has_simple_value = false;
    float simple_value = 0;
    bool has_image = false;
    int height = 0, width = 0, colorspace = 0;
    std::string encoded_image;
  };
  std::vector<Value> values;
};

/// The raw records of a TFRecord file; throws (naming the record) on a truncated record or
/// a wrong length or data CRC.
std::vector<std::string> read_records(const std::string& path);
/// Parses one serialized Event; throws when it is not one.
EventRecord parse_event(const std::string& bytes);
/// read_records + parse_event.
std::vector<EventRecord> read_events(const std::string& path);

}  // namespace ember::train
