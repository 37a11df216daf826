#pragma once
// ember::Error and the check macros used across the library.
#include <sstream>
#include <stdexcept>
#include <string>

namespace ember {

/// Every error ember raises: a message a user can act on (what was expected, what was got).
/// what() is that message alone; where ember raised it (the EMBER_CHECK or EMBER_THROW) is
/// kept beside it for debugging and bug reports.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, const char* file = nullptr, int line = 0)
      : std::runtime_error(msg), file_(file ? file : ""), line_(line) {}
  /// The source file and line that raised it ("" and 0 when not raised by the macros).
  const std::string& source_file() const { return file_; }
  int source_line() const { return line_; }

 private:
  std::string file_;
  int line_ = 0;
};

namespace detail {
template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& msg);
}  // namespace detail

}  // namespace ember

/// Throws ember::Error with the streamed message when `cond` is false.
#define EMBER_CHECK(cond, ...)                                                            \
  do {                                                                                    \
    if (!(cond)) ::ember::detail::throw_error(__FILE__, __LINE__,                          \
                                              ::ember::detail::str_cat(__VA_ARGS__));     \
  } while (0)

#define EMBER_THROW(...) ::ember::detail::throw_error(__FILE__, __LINE__, ::ember::detail::str_cat(__VA_ARGS__))
