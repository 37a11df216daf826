#pragma once
// The trainer's console + file log, and printf-style formatting for its messages.
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace ember::train {

/// printf into a std::string.
std::string strf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// Lines "YYYY-MM-DD HH:MM:SS level message" on stdout and appended to `file` (empty:
/// console only), through spdlog. `quiet` (ranks > 0 of a data-parallel run) keeps warnings
/// and errors only.
class Logger {
 public:
  explicit Logger(const std::string& file = "", bool quiet = false);
  ~Logger();
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void info(const std::string& msg);
  void warn(const std::string& msg);
  void error(const std::string& msg);
  /// A line for the file only (the console shows a progress bar instead).
  void file_only(const std::string& msg);
  bool has_file() const { return file_ != nullptr; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::shared_ptr<spdlog::logger> both_, file_;  // console + file; file alone (or null)
};

}  // namespace ember::train
