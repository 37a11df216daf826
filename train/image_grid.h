#pragma once
// Pictures: a grid of images with their predicted and true classes, as PNG.
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace ember::train {

/// 8-bit pixels, rows top to bottom, channels interleaved (RGB for the grid).
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

/// The images (B, C, H, W) f32 (C = 1 or 3; each scaled to 0..255 by its own min and max)
/// in a grid of `columns` (0: about square), each in a 2-pixel frame, green when
/// predicted[i] == labels[i] and red when not, above a caption strip showing the predicted
/// class, or "predicted/true" when wrong, in a 3x5-pixel digit font.
Image prediction_grid(const Tensor& images, const std::vector<int64_t>& labels,
                      const std::vector<int64_t>& predicted, int columns = 0);

/// PNG bytes (stb_image_write).
std::vector<uint8_t> encode_png(const Image& image);
/// Writes a PNG file; throws when it cannot.
void write_png(const std::string& path, const Image& image);

}  // namespace ember::train
