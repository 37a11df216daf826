#include "train/image_grid.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/error.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace ember::train {

namespace {

// 3x5 glyphs for 0-9 and '/', one row per 3 bits (MSB left).
constexpr uint8_t kFont[11][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7},
    {7, 4, 7, 5, 7}, {7, 1, 1, 2, 2}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {1, 1, 2, 4, 4},
};
constexpr int kBorder = 2, kCaption = 7;

struct Canvas {
  Image& img;
  void put(int x, int y, const uint8_t rgb[3]) {
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) return;
    uint8_t* p = &img.pixels[(size_t(y) * size_t(img.width) + size_t(x)) * 3];
    p[0] = rgb[0];
    p[1] = rgb[1];
    p[2] = rgb[2];
  }
  void rect(int x0, int y0, int w, int h, const uint8_t rgb[3]) {
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) put(x, y, rgb);
  }
  void text(int x, int y, const std::string& s, const uint8_t rgb[3]) {
    for (char c : s) {
      int g = c == '/' ? 10 : (c >= '0' && c <= '9' ? c - '0' : -1);
      if (g >= 0)
        for (int r = 0; r < 5; ++r)
          for (int b = 0; b < 3; ++b)
            if (kFont[g][r] & (4 >> b)) put(x + b, y + r, rgb);
      x += 4;
    }
  }
};

}  // namespace

Image prediction_grid(const Tensor& images_in, const std::vector<int64_t>& labels,
                      const std::vector<int64_t>& predicted, int columns) {
  Tensor images = images_in.to(kCPU).contiguous();
  EMBER_CHECK(images.dim() == 4, "prediction_grid: expected images (B, C, H, W), got ", images.dim(), " dims");
  const int64_t B = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
  EMBER_CHECK(C == 1 || C == 3, "prediction_grid: expected 1 or 3 channels, got ", C);
  EMBER_CHECK(int64_t(labels.size()) == B && int64_t(predicted.size()) == B, "prediction_grid: ", B,
              " images but ", labels.size(), " labels and ", predicted.size(), " predictions");
  EMBER_CHECK(B > 0, "prediction_grid: no images");
  std::vector<float> px = images.to(DType::f32).to_vector<float>();
  int cols = columns > 0 ? columns : int(std::ceil(std::sqrt(double(B))));
  int rows = int((B + cols - 1) / cols);
  // Wide enough for the caption "pp/tt".
  int cell_w = std::max<int>(int(W) + 2 * kBorder, 4 * 5 + 2), cell_h = int(H) + 2 * kBorder + kCaption;
  Image img;
  img.width = cols * cell_w;
  img.height = rows * cell_h;
  img.channels = 3;
  img.pixels.assign(size_t(img.width) * size_t(img.height) * 3, 0);
  Canvas cv{img};
  const uint8_t green[3] = {0, 200, 0}, red[3] = {230, 0, 0}, white[3] = {255, 255, 255};
  const int64_t plane = H * W;
  for (int64_t i = 0; i < B; ++i) {
    int x0 = int(i % cols) * cell_w, y0 = int(i / cols) * cell_h;
    bool right = predicted[size_t(i)] == labels[size_t(i)];
    cv.rect(x0, y0, int(W) + 2 * kBorder, int(H) + 2 * kBorder, right ? green : red);
    const float* src = px.data() + i * C * plane;
    float lo = *std::min_element(src, src + C * plane), hi = *std::max_element(src, src + C * plane);
    float scale = hi > lo ? 255.0f / (hi - lo) : 0.0f;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        uint8_t rgb[3];
        for (int c = 0; c < 3; ++c) {
          float v = src[(C == 3 ? c : 0) * plane + y * W + x];
          rgb[c] = uint8_t(std::clamp(std::lround((v - lo) * scale), 0L, 255L));
        }
        cv.put(x0 + kBorder + int(x), y0 + kBorder + int(y), rgb);
      }
    std::string caption = std::to_string(predicted[size_t(i)]);
    if (!right) {
      caption.push_back('/');
      caption += std::to_string(labels[size_t(i)]);
    }
    cv.text(x0 + 1, y0 + int(H) + 2 * kBorder + 1, caption, right ? white : red);
  }
  return img;
}

std::vector<uint8_t> encode_png(const Image& image) {
  EMBER_CHECK(image.width > 0 && image.height > 0 && image.channels >= 1 && image.channels <= 4 &&
                  image.pixels.size() == size_t(image.width) * size_t(image.height) * size_t(image.channels),
              "encode_png: bad image ", image.width, "x", image.height, "x", image.channels);
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  int ok = stbi_write_png_to_func(sink, &out, image.width, image.height, image.channels, image.pixels.data(),
                                  image.width * image.channels);
  EMBER_CHECK(ok != 0 && !out.empty(), "encode_png: stb_image_write failed");
  return out;
}

void write_png(const std::string& path, const Image& image) {
  std::vector<uint8_t> png = encode_png(image);
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(png.data()), std::streamsize(png.size()));
  EMBER_CHECK(f.good(), "cannot write ", path);
}

}  // namespace ember::train
