#pragma once
// NCCL errors as dist::Error with file, line and NCCL's own message.
#include <nccl.h>

#include <string>

#include "dist/communicator.h"

#define EMBER_NCCL_CHECK(expr)                                                                   \
  do {                                                                                           \
    ncclResult_t ember_nr_ = (expr);                                                             \
    if (ember_nr_ != ncclSuccess)                                                                \
      throw ::ember::dist::Error(std::string("NCCL error ") + ncclGetErrorString(ember_nr_) +    \
                                 " in " #expr " at " __FILE__ ":" + std::to_string(__LINE__));    \
  } while (0)
