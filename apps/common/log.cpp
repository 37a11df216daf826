#include "apps/common/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdio>

namespace ember::app {

std::shared_ptr<spdlog::logger> make_logger(const std::string& file, bool quiet) {
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  if (!file.empty()) sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, false));
  auto log = std::make_shared<spdlog::logger>("ember", sinks.begin(), sinks.end());
  log->set_pattern("%Y-%m-%d %H:%M:%S %^%l%$ %v");
  log->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
  log->flush_on(spdlog::level::info);
  return log;
}

Progress::Progress(std::shared_ptr<spdlog::logger> log, int64_t epoch, int64_t epochs,
                   int64_t total_iters, int64_t log_interval, bool enabled)
    : log_(std::move(log)),
      epoch_(epoch),
      epochs_(epochs),
      total_(total_iters),
      interval_(log_interval),
      enabled_(enabled),
      tty_(enabled && isatty(fileno(stdout))),
      start_(std::chrono::steady_clock::now()) {}

double Progress::images_per_second() const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return secs > 0 ? double(images_) / secs : 0.0;
}

void Progress::draw(int64_t iter) {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = iter > 0 ? secs / double(iter) * double(total_ - iter) : 0.0;
  int width = 30;
  int fill = total_ > 0 ? int(double(width) * double(iter) / double(total_)) : width;
  std::string bar(size_t(fill), '#');
  bar.resize(size_t(width), '.');
  std::string stats = have_loss_ ? fmt::format("loss {:.4f} acc {:.2f}% ", loss_, acc_ * 100) : "";
  std::printf("\repoch %lld/%lld [%s] %lld/%lld %s%.0f img/s ETA %.0fs   ", (long long)epoch_,
              (long long)epochs_, bar.c_str(), (long long)iter, (long long)total_, stats.c_str(),
              images_per_second(), eta);
  std::fflush(stdout);
  drawn_ = true;
  last_draw_ = std::chrono::steady_clock::now();
}

void Progress::tick(int64_t iter, int64_t images) {
  if (!enabled_) return;
  images_ += images;
  if (tty_ && (iter == total_ || std::chrono::steady_clock::now() - last_draw_ > std::chrono::milliseconds(100)))
    draw(iter);
}

void Progress::update(int64_t iter, double loss, double acc) {
  if (!enabled_) return;
  loss_ = loss;
  acc_ = acc;
  have_loss_ = true;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double eta = iter > 0 ? secs / double(iter) * double(total_ - iter) : 0.0;
  std::string line = fmt::format("epoch {} iter {}/{} loss {:.4f} acc {:.2f}% {:.0f} img/s ETA {:.0f}s", epoch_,
                                 iter, total_, loss, acc * 100, images_per_second(), eta);
  if (tty_) {
    draw(iter);
    // The console shows the bar; the log file gets the plain line.
    for (auto& s : log_->sinks())
      if (dynamic_cast<spdlog::sinks::basic_file_sink_mt*>(s.get()))
        s->log(spdlog::details::log_msg("ember", spdlog::level::info, line));
  } else {
    log_->info("{}", line);
  }
}

void Progress::finish() {
  if (tty_ && drawn_) {
    std::printf("\n");
    std::fflush(stdout);
  }
}

}  // namespace ember::app
