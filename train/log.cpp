#include "train/log.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <vector>

#include "core/error.h"

namespace ember::train {

std::string strf(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = std::vsnprintf(nullptr, 0, fmt, ap);
  va_end(ap);
  std::string out(size_t(n > 0 ? n : 0), '\0');
  if (n > 0) std::vsnprintf(out.data(), size_t(n) + 1, fmt, ap2);
  va_end(ap2);
  return out;
}

Logger::Logger(const std::string& file, bool quiet) : path_(file) {
  auto console = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  std::vector<spdlog::sink_ptr> sinks{console};
  if (!file.empty()) {
    spdlog::sink_ptr f;
    try {
      f = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file, /*truncate=*/false);
    } catch (const spdlog::spdlog_ex& e) {
      EMBER_THROW("cannot open the log file ", file, ": ", e.what());
    }
    sinks.push_back(f);
    file_ = std::make_shared<spdlog::logger>("ember.file", f);
  }
  both_ = std::make_shared<spdlog::logger>("ember", sinks.begin(), sinks.end());
  for (auto* l : {both_.get(), file_.get()}) {
    if (!l) continue;
    l->set_pattern("%Y-%m-%d %H:%M:%S %l %v");
    l->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
    l->flush_on(spdlog::level::info);
  }
}

Logger::~Logger() = default;

void Logger::info(const std::string& msg) { both_->info(msg); }
void Logger::warn(const std::string& msg) { both_->warn(msg); }
void Logger::error(const std::string& msg) { both_->error(msg); }
void Logger::file_only(const std::string& msg) {
  if (file_) file_->info(msg);
}

}  // namespace ember::train
