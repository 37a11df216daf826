#pragma once
// ember::Error and the check macros used across the library.
#include <sstream>
#include <stdexcept>
#include <string>

namespace ember {

/// Every error ember raises: a message a user can act on (what was expected, what was got).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
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
