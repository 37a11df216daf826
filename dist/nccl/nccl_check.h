#pragma once
// NCCL errors as dist::Error with file, line and NCCL's own message.
#include <nccl.h>

#include <string>

#include "dist/communicator.h"

namespace ember::dist::detail {
/// "NCCL error <name> in <expr> at <file:line>", plus ncclGetLastError's text (which says
/// why: the peer, the transport, the bad argument) when NCCL has one.
inline std::string nccl_error_text(ncclResult_t r, const char* expr, const char* file, int line) {
  std::string msg = std::string("NCCL error ") + ncclGetErrorString(r) + " in " + expr + " at " + file +
                    ":" + std::to_string(line);
  const char* last = ncclGetLastError(nullptr);
  if (last && *last) msg += std::string(": ") + last;
  return msg;
}
}  // namespace ember::dist::detail

#define EMBER_NCCL_CHECK(expr)                                                                   \
  do {                                                                                           \
    ncclResult_t ember_nr_ = (expr);                                                             \
    if (ember_nr_ != ncclSuccess)                                                                \
      throw ::ember::dist::Error(                                                                \
          ::ember::dist::detail::nccl_error_text(ember_nr_, #expr, __FILE__, __LINE__));         \
  } while (0)
