#pragma once
// The apps' console + file logging (spdlog), and the training progress display.
#include <chrono>
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace ember::app {

/// Logs to the console and to `file` (appending; empty: console only). `quiet` (ranks > 0
/// of a data-parallel run) logs warnings and errors only.
std::shared_ptr<spdlog::logger> make_logger(const std::string& file, bool quiet = false);

/// A live one-line bar (loss, images/s, ETA) when stdout is a terminal; otherwise a plain
/// line every `log_interval` iterations, so logs and CI output stay readable.
class Progress {
 public:
  Progress(std::shared_ptr<spdlog::logger> log, int64_t epoch, int64_t epochs, int64_t total_iters,
           int64_t log_interval, bool enabled);
  /// After every iteration `iter` (1-based within the epoch) that processed `images`:
  /// redraws the bar on a terminal (at most 10 times a second, with the last known loss).
  void tick(int64_t iter, int64_t images);
  /// With a fresh running loss/accuracy (reading them may wait for the GPU, so the caller
  /// does it every log interval): the bar, and a plain log line.
  void update(int64_t iter, double loss, double acc);
  void finish();

 private:
  void draw(int64_t iter);
  double images_per_second() const;

  std::shared_ptr<spdlog::logger> log_;
  int64_t epoch_, epochs_, total_, interval_;
  bool enabled_, tty_;
  int64_t images_ = 0;
  double loss_ = 0, acc_ = 0;
  bool have_loss_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace ember::app
