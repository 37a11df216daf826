#pragma once
// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, space-padded to a multiple of 8][data]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end)}
// (offsets relative to the data section) and may hold "__metadata__": {string: string}.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace ember {

/// A loaded safetensors file: tensors in file (data offset) order, all on the CPU, each
/// owning its memory; plus the string metadata.
struct SafetensorsFile {
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const;
  /// The tensor called `name`; throws ember::Error listing the names when it is absent.
  const Tensor& at(const std::string& name) const;
  std::vector<std::string> names() const;
};

/// Writes `tensors` (in this order) and `metadata` to `path`, atomically: the bytes go to
/// `path.tmp.<pid>`, which is fsynced and renamed over `path`, then the directory is
/// fsynced, so `path` always holds either the old file or the complete new one.
/// Non-contiguous tensors are written contiguously; CUDA tensors are copied to the CPU.
/// Names must be unique, non-empty and not "__metadata__". Throws ember::Error on failure.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

/// Reads a whole safetensors file, validating it (size, header, dtypes, shapes, offsets).
/// Every failure is an ember::Error that names the file and says what is wrong.
SafetensorsFile load_safetensors(const std::string& path);

/// The safetensors name of a dtype ("F32", "BF16", "BOOL", ...) and back (throws when the
/// name is not one ember stores).
const char* safetensors_dtype_name(DType t);
DType dtype_from_safetensors_name(const std::string& name);

}  // namespace ember
