#include "train/log.h"

#include <cstdarg>
#include <ctime>
#include <vector>

#include "tensor/error.h"

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

Logger::Logger(const std::string& file, bool quiet) : path_(file), quiet_(quiet) {
  if (!file.empty()) {
    file_ = std::fopen(file.c_str(), "a");
    EMBER_CHECK(file_ != nullptr, "cannot open the log file ", file);
  }
}

Logger::~Logger() {
  if (file_) std::fclose(file_);
}

void Logger::write(const char* level, const std::string& msg, bool console, bool file) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
  std::lock_guard<std::mutex> lock(mu_);
  if (console) {
    std::fprintf(stdout, "%s %s %s\n", stamp, level, msg.c_str());
    std::fflush(stdout);
  }
  if (file && file_) {
    std::fprintf(file_, "%s %s %s\n", stamp, level, msg.c_str());
    std::fflush(file_);
  }
}

void Logger::info(const std::string& msg) {
  if (!quiet_) write("info", msg, true, true);
}
void Logger::warn(const std::string& msg) { write("warning", msg, true, true); }
void Logger::error(const std::string& msg) { write("error", msg, true, true); }
void Logger::file_only(const std::string& msg) { write("info", msg, false, true); }

}  // namespace ember::train
