// Batch transforms of the data pipeline as ops (issue 11): data/ builds its batches with
// these, not with kernels, so the device dispatch lives here with every other op's. Not
// recorded by autograd (they make inputs, not activations).
#include "kernels/image_batch.h"

#include "autograd/ops.h"
#include "tensor/dispatch.h"

namespace ember {

namespace {
void check_on(const Tensor& t, Device d, DType dt, const char* what, const char* op) {
  EMBER_CHECK(t.defined(), op, ": ", what, " is undefined");
  EMBER_CHECK(t.device() == d && t.dtype() == dt && t.is_contiguous(), op, ": expected ", what, " to be a contiguous ",
              dtype_name(dt), " tensor on ", d, ", got ", dtype_name(t.dtype()), " on ", t.device(),
              t.is_contiguous() ? "" : " (not contiguous)");
}
}  // namespace

void gather_normalize_into(const Tensor& images, const Tensor& labels, const Tensor& idx, const Tensor& table,
                           const Tensor& out, const Tensor& out_labels) {
  const char* op = "gather_normalize_into";
  EMBER_CHECK(images.defined() && images.dim() >= 1, op, ": images must be (N, ...) u8");
  EMBER_CHECK(out.defined() && out.dim() >= 2, op, ": out must be (B, C, ...) f32");
  const Device d = images.device();
  check_on(images, d, DType::u8, "images", op);
  check_on(labels, d, DType::i64, "labels", op);
  check_on(idx, d, DType::i64, "idx", op);
  check_on(table, d, DType::f32, "table", op);
  check_on(out, d, DType::f32, "out", op);
  check_on(out_labels, d, DType::i64, "out_labels", op);
  const int64_t n = images.size(0), batch = idx.numel(), channels = out.size(1);
  const int64_t row = n > 0 ? images.numel() / n : 0;
  EMBER_CHECK(labels.numel() == n, op, ": ", n, " images but ", labels.numel(), " labels");
  EMBER_CHECK(table.numel() == channels * 256, op, ": table must hold 256 entries per channel (", channels * 256,
              "), got ", table.numel());
  EMBER_CHECK(out.numel() == batch * row && out_labels.numel() == batch, op, ": out must hold ", batch, " rows of ",
              row, " and out_labels ", batch, " labels, got ", out.numel(), " and ", out_labels.numel());
  if (batch == 0) return;
  EMBER_CHECK(channels > 0 && row % channels == 0, op, ": image rows of ", row, " values do not split into ", channels,
              " channels");
  const int64_t plane = row / channels;
  on_device(
      d, op,
      [&] {
        cpu::gather_normalize_u8(images.data<uint8_t>(), labels.data<int64_t>(), idx.data<int64_t>(), batch, channels,
                                 plane, table.data<float>(), out.data<float>(), out_labels.data<int64_t>());
      },
      EMBER_ON_CUDA(cuda::gather_normalize_u8(images.data<uint8_t>(), labels.data<int64_t>(), idx.data<int64_t>(),
                                              batch, channels, plane, table.data<float>(), out.data<float>(),
                                              out_labels.data<int64_t>(), stream)));
}

void crop_flip_into(const Tensor& images, const Tensor& keys, const CropFlipArgs& args, const Tensor& fill,
                    const Tensor& out) {
  const char* op = "crop_flip_into";
  EMBER_CHECK(images.defined() && images.dim() == 4, op, ": images must be (B, C, H, W) f32");
  const Device d = images.device();
  check_on(images, d, DType::f32, "images", op);
  check_on(keys, d, DType::i64, "keys", op);
  check_on(fill, d, DType::f32, "fill", op);
  check_on(out, d, DType::f32, "out", op);
  const int64_t b = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  EMBER_CHECK(keys.numel() == b, op, ": ", b, " images but ", keys.numel(), " keys");
  EMBER_CHECK(fill.numel() == c, op, ": fill must hold one value per channel (", c, "), got ", fill.numel());
  EMBER_CHECK(out.shape() == images.shape(), op, ": out ", out.shape_str(), " must have the images' shape ",
              images.shape_str());
  EMBER_CHECK(args.padding >= 0, op, ": padding must be >= 0, got ", args.padding);
  EMBER_CHECK(out.storage() != images.storage(), op, ": out must not share memory with the images");
  if (b == 0) return;
  on_device(
      d, op,
      [&] {
        cpu::crop_flip(images.data<float>(), out.data<float>(), keys.data<int64_t>(), b, c, h, w, args,
                       fill.data<float>());
      },
      EMBER_ON_CUDA(cuda::crop_flip(images.data<float>(), out.data<float>(), keys.data<int64_t>(), b, c, h, w, args,
                                    fill.data<float>(), stream)));
}

}  // namespace ember
