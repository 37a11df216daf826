#pragma once
// The public, differentiable ops. Each family lives in autograd/ops/<stem>.cpp with its
// checks, device dispatch and backward node (DESIGN.md, "the op rule").
#include <array>
#include <optional>
#include <type_traits>

#include "kernels/image_batch_math.h"  // CropFlipArgs
#include "kernels/sgd_math.h"         // SgdOptions
#include "tensor/tensor.h"

namespace ember {

// ---- copies and casts (autograd/ops/copy.cpp); Tensor::contiguous/clone/to are here too

// ---- elementwise unary (autograd/ops/unary.cpp)
Tensor neg(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form, as PyTorch's default
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor relu_(Tensor& x);  // in place

/// A number given to an op with a tensor (`x * 2`, `x * 2.5`): its value and whether it was
/// written as a bool, an integer or a floating-point number, as PyTorch's Scalar. The
/// result dtype follows the kind, never the value: an integer tensor with an integer keeps
/// its dtype, with a floating-point number (2.0 as well as 2.5) it computes in f32 (the
/// default dtype); a bool tensor with an integer gives i64. Floating tensors keep their dtype.
class Scalar {
 public:
  enum class Kind { boolean, integral, floating };
  template <class T>
    requires std::is_convertible_v<T, double> && (!std::is_same_v<std::remove_cvref_t<T>, Scalar>)
  Scalar(T v)  // NOLINT: implicit, so that ops take plain numbers
      : value_(double(v)),
        kind_(std::is_same_v<T, bool> ? Kind::boolean
              : std::is_integral_v<T> ? Kind::integral
                                      : Kind::floating) {}
  double value() const { return value_; }
  Kind kind() const { return kind_; }
  bool is_floating() const { return kind_ == Kind::floating; }

 private:
  double value_;
  Kind kind_;
};

// ---- elementwise binary with NumPy broadcasting (autograd/ops/binary.cpp)
Tensor add(const Tensor& a, const Tensor& b, double alpha = 1.0);  // a + alpha * b
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor add(const Tensor& a, Scalar b);
Tensor sub(const Tensor& a, Scalar b);
Tensor mul(const Tensor& a, Scalar b);
Tensor div(const Tensor& a, Scalar b);
Tensor pow(const Tensor& a, Scalar exponent);
Tensor rsub(const Tensor& a, Scalar b);  // b - a
// Comparisons give bool tensors and are not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double b);
Tensor ne(const Tensor& a, double b);
Tensor lt(const Tensor& a, double b);
Tensor le(const Tensor& a, double b);
Tensor gt(const Tensor& a, double b);
Tensor ge(const Tensor& a, double b);
/// cond ? a : b, broadcasting all three (cond is bool).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
/// The shape two shapes broadcast to; throws with both shapes when they cannot.
Shape broadcast_shapes(const Shape& a, const Shape& b);

Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, Scalar b);
Tensor operator-(const Tensor& a, Scalar b);
Tensor operator*(const Tensor& a, Scalar b);
Tensor operator/(const Tensor& a, Scalar b);
Tensor operator+(Scalar a, const Tensor& b);
Tensor operator-(Scalar a, const Tensor& b);
Tensor operator*(Scalar a, const Tensor& b);
Tensor operator/(Scalar a, const Tensor& b);

// ---- reductions (autograd/ops/reduce.cpp). Empty `dims` = all dims.
Tensor sum(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor max(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor min(const Tensor& x, const Shape& dims = {}, bool keepdim = false);
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
/// Variance with Bessel's correction by default (correction = 1), as PyTorch.
Tensor var(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, const Shape& dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim = false);

// ---- matmul (autograd/ops/matmul.cpp)
/// NumPy/PyTorch matmul: 1-D and 2-D operands, batched with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor mm(const Tensor& a, const Tensor& b);   // (n,k) @ (k,m)
Tensor bmm(const Tensor& a, const Tensor& b);  // (B,n,k) @ (B,k,m)
/// x @ w^T + b as one op: x (..., in), w (out, in), b (out) or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// ---- shape ops (autograd/ops/shape.cpp); views share storage
Tensor view(const Tensor& x, const Shape& shape);  // one dim may be -1
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim = std::nullopt);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dim
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
/// x[start:end:step] along dim (end clipped; negative start/end count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor cat(const TensorList& xs, int64_t dim = 0);
Tensor stack(const TensorList& xs, int64_t dim = 0);
TensorList split(const Tensor& x, int64_t split_size, int64_t dim = 0);
TensorList chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// Constant padding; `pad` lists (before, after) pairs starting from the last dim, as
/// torch.nn.functional.pad.
Tensor pad(const Tensor& x, const Shape& pad, double value = 0.0);

// ---- losses and activations along a dim (autograd/ops/softmax.cpp, loss.cpp)
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
enum class Reduction { none, mean, sum };
/// Fused log-softmax + NLL. logits (N, C) or (N, C, d...), labels (N) or (N, d...) of i64/i32.
Tensor cross_entropy(const Tensor& logits, const Tensor& labels,
                     Reduction reduction = Reduction::mean, double label_smoothing = 0.0,
                     int64_t ignore_index = -100);
Tensor nll_loss(const Tensor& log_probs, const Tensor& labels,
                Reduction reduction = Reduction::mean, int64_t ignore_index = -100);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::mean);
/// Zeroes elements with probability p and scales the rest by 1/(1-p) when `train`.
Tensor dropout(const Tensor& x, double p, bool train);

// ---- neural-network ops (autograd/ops/conv.cpp, pool.cpp, batch_norm.cpp); NCHW
/// x (N, C_in, H, W), w (C_out, C_in / groups, kH, kW), b (C_out) or undefined.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
              std::array<int64_t, 2> stride = {1, 1}, std::array<int64_t, 2> padding = {0, 0},
              std::array<int64_t, 2> dilation = {1, 1}, int64_t groups = 1);
/// The CPU convolution algorithms picked by timing so far, as text, and loading such text
/// (Note [Algorithm choices travel with the run] in kernels/cpu/conv.cpp): the Trainer keeps
/// them with its checkpoints and best weights, so a resumed run or an evaluation in another
/// process runs the same algorithms and gets the same bits.
std::string conv_algorithm_choices();
void load_conv_algorithm_choices(const std::string& text);
/// stride defaults to the kernel size when empty ({0, 0}).
Tensor max_pool2d(const Tensor& x, std::array<int64_t, 2> kernel,
                  std::array<int64_t, 2> stride = {0, 0}, std::array<int64_t, 2> padding = {0, 0});
Tensor avg_pool2d(const Tensor& x, std::array<int64_t, 2> kernel,
                  std::array<int64_t, 2> stride = {0, 0}, std::array<int64_t, 2> padding = {0, 0},
                  bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, std::array<int64_t, 2> output_size);
/// Batch norm over (N, C) or (N, C, H, W). In training, uses batch statistics and updates
/// running_mean/running_var in place (momentum, unbiased variance, as PyTorch) when they
/// are defined; in eval, uses the running statistics. weight/bias may be undefined.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);

// ---- optimizer updates (autograd/ops/optim.cpp): in place, never recorded
/// One SGD step (SgdOptions, as torch.optim.SGD) of each params[i] from grads[i], with its
/// momentum buffer bufs[i] when opt.momentum != 0 (undefined otherwise); first[i]: the buffer
/// is new and becomes the gradient. Per index: contiguous, same shape, dtype and device.
/// CUDA parameters of one device, dtype and first flag run as one multi-tensor launch
/// sequence. Bumps the versions of the parameters and buffers it writes.
void sgd_update_(const TensorList& params, const TensorList& grads, const TensorList& bufs,
                 const std::vector<bool>& first, const SgdOptions& opt);

// ---- batch transforms of the data pipeline (autograd/ops/image_batch.cpp); not recorded
/// out (B, C, ...) f32 and out_labels (B) i64 from rows idx (B) of u8 images (N, ...) and
/// labels (N) i64, each pixel normalized through table (C, 256) f32: out = table[c][pixel]
/// (an image row holds out's row of C planes).
/// All tensors contiguous, on one device; idx must be in range (callers check it on the host:
/// on a GPU a bad index would read out of bounds).
void gather_normalize_into(const Tensor& images, const Tensor& labels, const Tensor& idx, const Tensor& table,
                           const Tensor& out, const Tensor& out_labels);
/// Random crop (pixels outside the image take fill[c]) and horizontal flip of images
/// (B, C, H, W) f32 into out (same shape, separate memory), chosen per image by (args.seed,
/// args.epoch, keys[b]) as Note [Augmentation randomness] in data/augment.h says.
void crop_flip_into(const Tensor& images, const Tensor& keys, const CropFlipArgs& args, const Tensor& fill,
                    const Tensor& out);

/// Deterministic mode (off by default): CUDA results repeat bit for bit from run to run.
/// scatter-add (index_select and gather backward) runs a kernel without atomics whose sums
/// equal the CPU's bit for bit, and cuDNN convolutions use deterministic algorithms chosen by
/// cuDNN's heuristics, without timing, and CUDA batch norm runs ember's kernels (no timed
/// choice between them and cuDNN's: kernels/cudnn/batch_norm.cpp). On the CPU, results repeat
/// from run to run anyway; deterministic mode also makes them independent of the thread count
/// (convolution weight and bias gradients summed over fixed blocks of images, OpenBLAS on one
/// thread; long sums are always chunked by length alone), so 1 and N threads give the same
/// bits.
void set_deterministic(bool on);
bool deterministic();

namespace cudnn {
/// The same switch as ember::set_deterministic (kept for existing callers). Algorithms
/// are cached per shape and per this setting.
void set_deterministic(bool on);
bool deterministic();
/// Turns the cuDNN path off (CUDA convolutions then use ember's direct kernels, as a build
/// without cuDNN does). enabled() is false in builds without cuDNN.
void set_enabled(bool on);
bool enabled();
}  // namespace cudnn

}  // namespace ember
