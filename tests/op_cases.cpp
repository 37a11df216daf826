// The op-case table (see op_cases.h, "How to add an op").
#include "op_cases.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace ember::test {

const char* family_name(Family f) {
  switch (f) {
    case Family::elementwise: return "elementwise";
    case Family::reduction: return "reduction";
    case Family::shape: return "shape";
    case Family::index: return "index";
    case Family::matmul: return "matmul";
    case Family::softmax: return "softmax";
    case Family::loss: return "loss";
    case Family::nn: return "nn";
  }
  return "?";
}

std::map<DType, Tol> default_tol() { return {{DType::f32, {1e-4, 1e-4}}, {DType::f64, {1e-10, 1e-10}}}; }
std::map<DType, Tol> tight_tol() { return {{DType::f32, {1e-5, 1e-6}}, {DType::f64, {1e-10, 1e-10}}}; }
std::map<DType, Tol> nn_tol() { return {{DType::f32, {1e-4, 1e-4}}, {DType::f64, {1e-9, 1e-9}}}; }
std::map<DType, Tol> exact_tol() { return {{DType::f32, {1e-5, 1e-6}}, {DType::f64, {1e-5, 1e-6}}}; }

namespace {

using L = const TensorList&;
constexpr DType f16 = DType::f16, bf16 = DType::bf16, f32 = DType::f32, f64 = DType::f64;

Tensor draw(const Shape& s, DType dt, Dist dist, double lo, double hi) {
  return dist == Dist::normal ? randn(s, {.dtype = dt}) : uniform(s, lo, hi, {.dtype = dt});
}

// The last two dims swapped, as a view (no copy).
Tensor tview(const Tensor& t) {
  Shape sz = t.shape(), st = t.strides();
  std::swap(sz[sz.size() - 1], sz[sz.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return make_view(t, sz, st, t.offset());
}
Shape swapped(Shape s) {
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  return s;
}

// Inputs `which` are transposed views of the given shapes (a base of the swapped shape);
// the others are contiguous.
InputMaker transposed(std::vector<size_t> which, Dist dist = Dist::normal, double lo = -2, double hi = 2) {
  return [=](const std::vector<Shape>& shapes, DType dt) {
    TensorList in;
    for (size_t i = 0; i < shapes.size(); ++i) {
      bool t = std::find(which.begin(), which.end(), i) != which.end();
      in.push_back(t ? tview(draw(swapped(shapes[i]), dt, dist, lo, hi)) : draw(shapes[i], dt, dist, lo, hi));
    }
    return in;
  };
}

// Input 0 is every other column of an (r, 2c) tensor: neither stride is 1 (matmul must copy).
InputMaker every_other_column() {
  return [](const std::vector<Shape>& shapes, DType dt) {
    Tensor base = randn({shapes[0][0], 2 * shapes[0][1]}, {.dtype = dt});
    TensorList in{make_view(base, shapes[0], {base.stride(0), 2}, 0)};
    for (size_t i = 1; i < shapes.size(); ++i) in.push_back(randn(shapes[i], {.dtype = dt}));
    return in;
  };
}

// Logits of shapes[0] (N, C, ...) and i64 labels (N, ...) in [0, C), every 7th ignored (-100).
InputMaker with_labels(bool transposed_logits = false) {
  return [=](const std::vector<Shape>& shapes, DType dt) {
    const Shape& s = shapes[0];
    Tensor logits = transposed_logits ? tview(randn(swapped(s), {.dtype = dt})) : randn(s, {.dtype = dt});
    Shape ls{s[0]};
    for (size_t d = 2; d < s.size(); ++d) ls.push_back(s[d]);
    int64_t C = s[1], n = shape_numel(ls);
    std::vector<int64_t> v;
    for (int64_t i = 0; i < n; ++i) v.push_back(i % 7 == 3 ? -100 : (i * 5 + 1) % C);
    return TensorList{logits, from_vector(v, ls, {.dtype = DType::i64})};
  };
}

// Index tensors are made on the CPU once and moved to the input's device inside fn.
Tensor i64(const std::vector<int64_t>& v, const Shape& s) { return from_vector(v, s, {.dtype = DType::i64}); }
Tensor on(const Tensor& idx, const Tensor& like) { return idx.to(like.device()); }
const Tensor& sel_index() {
  static Tensor t = i64({3, 0, 3, 1, 3, 2}, {6});
  return t;
}
const Tensor& sel_index_i32() {
  static Tensor t = from_vector(std::vector<int32_t>{2, 2, 0}, {3}, {.dtype = DType::i32});
  return t;
}
const Tensor& gather_index() {
  static Tensor t = i64({0, 2, 2, 1, 1, 1, 0, 0}, {4, 2});
  return t;
}
const Tensor& gather_index_dim0() {
  static Tensor t = i64({3, 3, 0, 1, 2, 3}, {2, 3});
  return t;
}

Tensor tr(const Tensor& x) { return transpose(x, 0, 1); }  // a non-contiguous view
Tensor like(const Tensor& x, double v, int64_t n) {
  return full({n}, v, {.dtype = x.dtype(), .device = x.device()});
}

const std::vector<Shape> kSmall{{3, 4}};  // gradcheck shape of the unary ops

std::vector<OpCase> build() {
  using F = Family;
  std::vector<OpCase> v = {
      // ---- elementwise, unary: parity shapes hit the vectorized bodies and their tails
      {.name = "neg", .family = F::elementwise, .shapes = {{17, 33}}, .fn = [](L in) { return neg(in[0]); },
       .make = transposed({0}, Dist::uniform), .ref = [](double x) { return -x; }, .gradcheck_shapes = kSmall},
      {.name = "abs", .family = F::elementwise, .shapes = {{1000}}, .fn = [](L in) { return abs(in[0]); },
       .ref = [](double x) { return std::fabs(x); }, .gradcheck_shapes = kSmall},
      {.name = "exp", .family = F::elementwise, .shapes = {{4097}}, .fn = [](L in) { return exp(in[0]); },
       .ref = [](double x) { return std::exp(x); }, .gradcheck_shapes = kSmall},
      {.name = "log", .family = F::elementwise, .shapes = {{513}}, .fn = [](L in) { return log(in[0]); },
       .lo = 0.1, .hi = 3, .ref = [](double x) { return std::log(x); }, .gradcheck_shapes = kSmall},
      {.name = "sqrt", .family = F::elementwise, .shapes = {{300}}, .fn = [](L in) { return sqrt(in[0]); },
       .lo = 0.1, .hi = 3, .ref = [](double x) { return std::sqrt(x); }, .gradcheck_shapes = kSmall},
      {.name = "rsqrt", .family = F::elementwise, .shapes = {{300}}, .fn = [](L in) { return rsqrt(in[0]); },
       .lo = 0.1, .hi = 3, .ref = [](double x) { return 1 / std::sqrt(x); }, .gradcheck_shapes = kSmall},
      {.name = "sin", .family = F::elementwise, .shapes = {{3, 64}}, .fn = [](L in) { return sin(in[0]); },
       .make = transposed({0}, Dist::uniform), .ref = [](double x) { return std::sin(x); },
       .gradcheck_shapes = kSmall},
      {.name = "cos", .family = F::elementwise, .shapes = {{129}}, .fn = [](L in) { return cos(in[0]); },
       .ref = [](double x) { return std::cos(x); }, .gradcheck_shapes = kSmall},
      {.name = "tanh", .family = F::elementwise, .shapes = {{1025}}, .fn = [](L in) { return tanh(in[0]); },
       .ref = [](double x) { return std::tanh(x); }, .gradcheck_shapes = kSmall},
      {.name = "sigmoid", .family = F::elementwise, .shapes = {{77, 5}}, .fn = [](L in) { return sigmoid(in[0]); },
       .ref = [](double x) { return 1 / (1 + std::exp(-x)); }, .gradcheck_shapes = kSmall},
      {.name = "relu", .family = F::elementwise, .shapes = {{100000}}, .fn = [](L in) { return relu(in[0]); },
       .ref = [](double x) { return x > 0 ? x : 0; }, .gradcheck_shapes = kSmall},
      {.name = "gelu", .family = F::elementwise, .shapes = {{999}}, .fn = [](L in) { return gelu(in[0]); },
       .ref = [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, .gradcheck_shapes = kSmall},
      {.name = "square", .family = F::elementwise, .shapes = {{31}}, .fn = [](L in) { return square(in[0]); },
       .ref = [](double x) { return x * x; }, .gradcheck_shapes = kSmall},
      {.name = "reciprocal", .family = F::elementwise, .shapes = {{31}},
       .fn = [](L in) { return reciprocal(in[0]); }, .lo = 0.5, .hi = 2,
       .ref = [](double x) { return 1 / x; }, .gradcheck_shapes = kSmall},
      {.name = "sign", .family = F::elementwise, .shapes = {{257}}, .fn = [](L in) { return sign(in[0]); },
       .ref = [](double x) { return double((x > 0) - (x < 0)); }, .gradcheck_shapes = kSmall},
      {.name = "clamp", .family = F::elementwise, .shapes = {{257}},
       .fn = [](L in) { return clamp(in[0], -0.5, 1.0); },
       .ref = [](double x) { return std::min(std::max(x, -0.5), 1.0); }, .gradcheck_shapes = kSmall},
      {.name = "cast_roundtrip", .family = F::elementwise, .shapes = {{100}},
       .fn = [](L in) { return in[0].to(DType::f16).to(in[0].dtype()) * 2.0; },
       .no_gradcheck = "rounds through f16: central differences in f64 see f16 steps, not the "
                       "derivative (autograd_test's CastsBetweenFloatTypes checks the gradient)"},

      // ---- elementwise, binary (broadcasting, views, scalar forms)
      {.name = "add_row_broadcast", .family = F::elementwise, .shapes = {{2, 3}, {3}},
       .fn = [](L in) { return in[0] + in[1]; }},
      {.name = "add_alpha_broadcast", .family = F::elementwise, .shapes = {{8, 1, 5}, {3, 1}},
       .fn = [](L in) { return add(in[0], in[1], 0.5); }},
      {.name = "sub_noncontig", .family = F::elementwise, .shapes = {{6, 7}, {7, 6}},
       .fn = [](L in) { return tr(in[0]) - in[1]; }},
      {.name = "sub_outer_broadcast", .family = F::elementwise, .shapes = {{2, 1}, {3}},
       .fn = [](L in) { return in[0] - in[1]; }},
      {.name = "mul_col_broadcast", .family = F::elementwise, .shapes = {{2, 3}, {2, 1}},
       .fn = [](L in) { return in[0] * in[1]; }},
      {.name = "mul_scalar", .family = F::elementwise, .shapes = {{1023}},
       .fn = [](L in) { return in[0] * 3.0 + 1.0; }, .gradcheck_shapes = {{20}}},
      {.name = "div", .family = F::elementwise, .shapes = {{40, 3}, {3}}, .fn = [](L in) { return in[0] / in[1]; },
       .lo = 0.5, .hi = 2},
      {.name = "pow", .family = F::elementwise, .shapes = {{50}, {50}},
       .fn = [](L in) { return pow(in[0], in[1]); }, .lo = 0.5, .hi = 2},
      {.name = "pow_scalar_rdiv", .family = F::elementwise, .shapes = {{2, 3}},
       .fn = [](L in) { return pow(in[0], 3.0) + 2.0 / in[0]; }, .lo = 0.5, .hi = 2},
      {.name = "maximum", .family = F::elementwise, .shapes = {{16, 16}, {16}},
       .fn = [](L in) { return maximum(in[0], in[1]); }, .gradcheck_shapes = {{4, 3}, {3}}},
      {.name = "minimum", .family = F::elementwise, .shapes = {{16, 16}, {16, 1}},
       .fn = [](L in) { return minimum(in[0], in[1]); }, .gradcheck_shapes = {{2, 3}, {2, 1}}},
      {.name = "where", .family = F::elementwise, .shapes = {{64}, {64}},
       .fn = [](L in) { return where(gt(in[0], 0.0), in[0], in[1]); }, .gradcheck_shapes = {{2, 3}, {3}}},
      // Two ops on one transposed leaf: the gradient accumulates into a strided input.
      {.name = "mul_exp_noncontig", .family = F::elementwise, .shapes = {{3, 4}, {3, 4}},
       .fn = [](L in) { return in[0] * in[1] + exp(in[0]); }, .make = transposed({0}, Dist::uniform, -1, 1)},

      // ---- reductions: the splits of the CUDA kernels (rows, columns, across blocks)
      {.name = "sum_all", .family = F::reduction, .shapes = {{1 << 18}}, .fn = [](L in) { return sum(in[0]); },
       .gradcheck_shapes = {{2, 3, 4}}},
      {.name = "sum_rows", .family = F::reduction, .shapes = {{37, 1000}},
       .fn = [](L in) { return sum(in[0], {1}); }, .gradcheck_shapes = {{5, 7}}},
      {.name = "sum_cols", .family = F::reduction, .shapes = {{1000, 37}},
       .fn = [](L in) { return sum(in[0], {0}); }, .gradcheck_shapes = {{7, 5}}},
      {.name = "sum_mixed", .family = F::reduction, .shapes = {{4, 5, 6}},
       .fn = [](L in) { return sum(in[0], {0, 2}, true); }},
      {.name = "sum_rows_noncontig", .family = F::reduction, .shapes = {{30, 40}},
       .fn = [](L in) { return sum(in[0], {1}); }, .make = transposed({0}, Dist::uniform),
       .gradcheck_shapes = {{3, 4}}},
      // The column split (r across blocks) and the vector row kernel on misaligned rows.
      {.name = "sum_cols_split", .family = F::reduction, .shapes = {{4096, 10}},
       .fn = [](L in) { return sum(in[0], {0}); }, .gradcheck_shapes = {{50, 3}}},
      {.name = "mean_cols_split", .family = F::reduction, .shapes = {{3000, 3, 7}},
       .fn = [](L in) { return mean(in[0], {1, 0}); }, .gradcheck_shapes = {{10, 3, 4}}},
      {.name = "max_cols_split", .family = F::reduction, .shapes = {{2000, 9}},
       .fn = [](L in) { return max(in[0], {0}); }, .gradcheck_shapes = {{20, 9}}},
      {.name = "sum_rows_misaligned", .family = F::reduction, .shapes = {{5, 4099}},
       .fn = [](L in) { return sum(in[0], {1}); }, .gradcheck_shapes = {{3, 41}}},
      {.name = "mean_rows_split", .family = F::reduction, .shapes = {{2, 70001}},
       .fn = [](L in) { return mean(in[0], {1}); }, .gradcheck_shapes = {{2, 101}}},
      {.name = "mean_noncontig", .family = F::reduction, .shapes = {{30, 40}},
       .fn = [](L in) { return mean(tr(in[0]), {1}); }, .gradcheck_shapes = {{5, 6}}},
      {.name = "mean_keepdim", .family = F::reduction, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return mean(in[0], {1}, true); }},
      {.name = "mean_all", .family = F::reduction, .shapes = {{2, 3, 4}}, .fn = [](L in) { return mean(in[0]); }},
      {.name = "max_dim", .family = F::reduction, .shapes = {{20, 33}}, .fn = [](L in) { return max(in[0], {1}); },
       .gradcheck_shapes = {{4, 7}}},
      {.name = "max_all", .family = F::reduction, .shapes = {{2, 3, 4}}, .fn = [](L in) { return max(in[0]); }},
      {.name = "min_dims", .family = F::reduction, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return min(in[0], {0, 1}); }},
      {.name = "min_all", .family = F::reduction, .shapes = {{4099}}, .fn = [](L in) { return min(in[0]); },
       .gradcheck_shapes = {{40}}},
      {.name = "var_dim1", .family = F::reduction, .shapes = {{6, 7}}, .fn = [](L in) { return var(in[0], {1}); },
       .dist = Dist::normal, .parity = tight_tol(), .gradcheck_shapes = {{3, 4}}},
      {.name = "var_all", .family = F::reduction, .shapes = {{6, 7}}, .fn = [](L in) { return var(in[0]); },
       .dist = Dist::normal, .parity = tight_tol(), .gradcheck_shapes = {{3, 4}}},
      {.name = "std_dim0_keepdim", .family = F::reduction, .shapes = {{6, 7}},
       .fn = [](L in) { return std(in[0], {0}, 0, true); }, .dist = Dist::normal, .parity = tight_tol(),
       .gradcheck_shapes = {{3, 4}}},
      {.name = "std_all", .family = F::reduction, .shapes = {{6, 7}}, .fn = [](L in) { return std(in[0], {}, 0); },
       .dist = Dist::normal, .parity = tight_tol(), .gradcheck_shapes = {{3, 4}}},
      {.name = "logsumexp_dim1", .family = F::reduction, .shapes = {{6, 7}},
       .fn = [](L in) { return logsumexp(in[0], {1}); }, .dist = Dist::normal, .parity = tight_tol(),
       .gradcheck_shapes = {{3, 4}}},
      {.name = "logsumexp_all", .family = F::reduction, .shapes = {{6, 7}},
       .fn = [](L in) { return logsumexp(in[0], {}); }, .dist = Dist::normal, .parity = tight_tol(),
       .gradcheck_shapes = {{3, 4}}},

      // ---- shape ops: pure data movement, exact forward
      {.name = "flatten", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return flatten(transpose(in[0], 0, 2), 1); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "flatten_all", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return flatten(in[0]); }, .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "reshape", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return in[0].reshape({6, 4}) * 2.0; }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "view_sum", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return in[0].view({4, -1}).sum({1}); }, .dist = Dist::normal, .parity = tight_tol()},
      {.name = "squeeze", .family = F::shape, .shapes = {{2, 1, 3}}, .fn = [](L in) { return squeeze(in[0], 1); },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "squeeze_unsqueeze", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return squeeze(unsqueeze(in[0], 1)); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "squeeze_unsqueeze_last", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return squeeze(unsqueeze(in[0], -1), -1); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "unsqueeze", .family = F::shape, .shapes = {{2, 3}}, .fn = [](L in) { return unsqueeze(in[0], -1); },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "transpose", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return transpose(in[0], 0, -1); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "permute", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return permute(in[0], {1, 2, 0}); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "permute_of_transpose", .family = F::shape, .shapes = {{2, 3, 4}},
       .fn = [](L in) { return permute(transpose(in[0], 1, 2), {2, 0, 1}); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "expand", .family = F::shape, .shapes = {{3, 1}}, .fn = [](L in) { return expand(in[0], {2, 3, 5}); },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "expand_transposed", .family = F::shape, .shapes = {{3, 1}},
       .fn = [](L in) { return expand(transpose(in[0], 0, 1), {3, 1, 3}); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "narrow", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return narrow(tr(in[0]), 0, 1, 3); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "narrow_negative_start", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return narrow(tr(in[0]), 0, -2, 2); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "narrow_contiguous", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return narrow(in[0], 1, 1, 3); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "slice", .family = F::shape, .shapes = {{4, 7}}, .fn = [](L in) { return slice(in[0], 1, 1, 7, 2); },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "slice_transposed", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return slice(tr(in[0]), -1, 1, 4, 2); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "select", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return select(tr(in[0]), 1, -1); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "select_first_dim", .family = F::shape, .shapes = {{4, 5}},
       .fn = [](L in) { return select(in[0], 0, -1); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "cat", .family = F::shape, .shapes = {{2, 3}, {2, 1}, {3, 2}},
       .fn = [](L in) { return cat({in[0], in[1], tr(in[2])}, 1); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "cat_negative_dim", .family = F::shape, .shapes = {{2, 3}, {3, 2}},
       .fn = [](L in) { return cat({in[0], tr(in[1])}, -2); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "cat_of_narrow", .family = F::shape, .shapes = {{4, 3}},
       .fn = [](L in) { return cat({in[0], narrow(in[0], 0, 1, 2)}); }, .make = transposed({0}),
       .parity = exact_tol(), .exact_forward = true},
      {.name = "stack", .family = F::shape, .shapes = {{2, 3}, {3, 2}},
       .fn = [](L in) { return stack({in[0], tr(in[1])}, 1); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "stack_repeated", .family = F::shape, .shapes = {{2, 3}, {2, 3}},
       .fn = [](L in) { return stack({in[0], in[1], in[0]}, -1); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "split", .family = F::shape, .shapes = {{5, 3}},
       .fn = [](L in) {
         TensorList p = split(in[0], 2);
         return cat({p[2] * 3.0, p[0]});  // p[1] unused: its gradient is zero
       },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "chunk", .family = F::shape, .shapes = {{3, 5}},
       .fn = [](L in) {
         TensorList p = chunk(in[0], 2, 1);
         return cat({p[1], p[0]}, 1);
       },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "chunk_transposed", .family = F::shape, .shapes = {{5, 3}},
       .fn = [](L in) {
         TensorList p = chunk(tr(in[0]), 2, 1);  // pieces (3, 3) and (3, 2)
         return cat({p[1], p[0] * p[0]}, 1);
       },
       .dist = Dist::normal, .parity = exact_tol(), .exact_forward = true},
      {.name = "pad", .family = F::shape, .shapes = {{2, 3}},
       .fn = [](L in) { return pad(tr(in[0]), {1, 2, -1, 1}, 0.5); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "pad_value", .family = F::shape, .shapes = {{2, 3}},
       .fn = [](L in) { return pad(in[0], {1, 2, 0, 1}, 0.5); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "pad_negative", .family = F::shape, .shapes = {{2, 3}},
       .fn = [](L in) { return pad(in[0], {-1, -1, 1, 0}); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},
      {.name = "pad_transposed_crop", .family = F::shape, .shapes = {{2, 3}},
       .fn = [](L in) { return pad(tr(in[0]), {2, -1}); }, .dist = Dist::normal, .parity = exact_tol(),
       .exact_forward = true},

      // ---- index ops: forward exact, the backward scatter-adds (atomics on the GPU)
      {.name = "index_select", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return index_select(in[0], 0, on(sel_index(), in[0])); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "index_select_t", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return index_select(tr(in[0]), 1, on(sel_index(), in[0])); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "index_select_i32", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return index_select(in[0], -1, on(sel_index_i32(), in[0])); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "gather", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return gather(in[0], 1, on(gather_index(), in[0])); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "gather_dim0", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return gather(in[0], 0, on(gather_index_dim0(), in[0])); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "gather_t", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return gather(tr(in[0]), 0, tr(on(gather_index(), in[0]))); }, .dist = Dist::normal,
       .parity = exact_tol(), .exact_forward = true},
      {.name = "gather_noncontig_leaf", .family = F::index, .shapes = {{4, 3}},
       .fn = [](L in) { return gather(in[0], 1, on(gather_index(), in[0])); }, .make = transposed({0}),
       .parity = exact_tol(), .exact_forward = true},

      // ---- matmul / bmm / linear
      {.name = "matmul_2d", .family = F::matmul, .shapes = {{64, 48}, {48, 32}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .parity = {{f32, {1e-4, 1e-4}}, {f64, {1e-12, 1e-12}}}, .gradcheck_shapes = {{3, 4}, {4, 2}}},
      {.name = "matmul_odd", .family = F::matmul, .shapes = {{33, 17}, {17, 9}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .parity = {{f32, {1e-4, 1e-4}}, {f64, {1e-12, 1e-12}}}, .gradcheck_shapes = {{5, 3}, {3, 2}}},
      {.name = "matmul_half", .family = F::matmul, .shapes = {{32, 24}, {24, 16}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .parity = {{f16, {1e-2, 3e-2}}, {bf16, {2e-2, 2e-1}}},
       .no_gradcheck = "the f16/bf16 parity row of matmul_2d, which is gradchecked"},
      {.name = "matmul_transposed_views", .family = F::matmul, .shapes = {{64, 48}, {48, 32}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .make = transposed({0, 1}),
       .gradcheck_shapes = {{3, 4}, {4, 2}}},
      {.name = "matmul_strided_copy", .family = F::matmul, .shapes = {{16, 12}, {12, 5}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .make = every_other_column(),
       .gradcheck_shapes = {{3, 4}, {4, 2}}},
      {.name = "matmul_3d", .family = F::matmul, .shapes = {{2, 3, 4}, {2, 4, 5}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal},
      {.name = "matmul_broadcast_batch", .family = F::matmul, .shapes = {{2, 1, 8, 5}, {3, 5, 4}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{2, 1, 3, 4}, {3, 4, 2}}},
      // Shared B: grad_b folds into one GEMM.
      {.name = "matmul_shared_b", .family = F::matmul, .shapes = {{4, 8, 16}, {16, 8}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{3, 3, 4}, {4, 2}}},
      {.name = "matmul_shared_a", .family = F::matmul, .shapes = {{8, 16}, {4, 16, 8}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{3, 4}, {2, 4, 5}}},
      {.name = "matmul_dot", .family = F::matmul, .shapes = {{40}, {40}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal, .gradcheck_shapes = {{4}, {4}}},
      {.name = "matmul_vec_mat", .family = F::matmul, .shapes = {{4}, {4, 3}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal},
      {.name = "matmul_mat_vec", .family = F::matmul, .shapes = {{3, 4}, {4}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal},
      {.name = "matmul_vec_batch", .family = F::matmul, .shapes = {{6}, {3, 6, 5}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{4}, {2, 4, 3}}},
      {.name = "matmul_batch_vec", .family = F::matmul, .shapes = {{3, 5, 6}, {6}},
       .fn = [](L in) { return matmul(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{2, 3, 4}, {4}}},
      {.name = "mm", .family = F::matmul, .shapes = {{33, 17}, {17, 9}}, .fn = [](L in) { return mm(in[0], in[1]); },
       .dist = Dist::normal, .gradcheck_shapes = {{3, 4}, {4, 2}}},
      {.name = "bmm", .family = F::matmul, .shapes = {{5, 7, 9}, {5, 9, 3}},
       .fn = [](L in) { return bmm(in[0], in[1]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{2, 3, 4}, {2, 4, 5}}},
      {.name = "linear_bias_3d", .family = F::matmul, .shapes = {{2, 6, 10}, {7, 10}, {7}},
       .fn = [](L in) { return linear(in[0], in[1], in[2]); }, .dist = Dist::normal,
       .gradcheck_shapes = {{2, 3, 4}, {5, 4}, {5}}},
      {.name = "linear_bias_2d", .family = F::matmul, .shapes = {{3, 4}, {5, 4}, {5}},
       .fn = [](L in) { return linear(in[0], in[1], in[2]); }, .dist = Dist::normal},
      {.name = "linear_bias_1d", .family = F::matmul, .shapes = {{4}, {5, 4}, {5}},
       .fn = [](L in) { return linear(in[0], in[1], in[2]); }, .dist = Dist::normal},
      {.name = "linear_no_bias", .family = F::matmul, .shapes = {{6, 10}, {7, 10}},
       .fn = [](L in) { return linear(in[0], in[1]); }, .dist = Dist::normal, .gradcheck_shapes = {{3, 4}, {5, 4}}},
      {.name = "linear_no_bias_3d", .family = F::matmul, .shapes = {{2, 3, 4}, {5, 4}},
       .fn = [](L in) { return linear(in[0], in[1]); }, .dist = Dist::normal},
      // A transposed weight view, and an input that needs no gradient.
      {.name = "linear_transposed_weight", .family = F::matmul, .shapes = {{3, 4}, {5, 4}, {5}},
       .fn = [](L in) { return linear(in[0], in[1], in[2]); }, .make = transposed({1}), .constant = {0}},
      {.name = "linear_bf16", .family = F::matmul, .shapes = {{6, 10}, {7, 10}, {7}},
       .fn = [](L in) { return linear(in[0], in[1], in[2]); }, .dist = Dist::normal,
       .parity = {{bf16, {2e-2, 2e-1}}},
       .no_gradcheck = "the bf16 parity row of linear_bias_2d, which is gradchecked"},
  };

  // ---- softmax / log_softmax: warp per row (C <= 1024), block per row, the strided
  // (inner > 1) kernel, dim 0.
  for (bool lg : {false, true}) {
    std::string n = lg ? "log_softmax" : "softmax";
    auto sm = [lg](int64_t dim) {
      return [lg, dim](L in) { return lg ? log_softmax(in[0], dim) : softmax(in[0], dim); };
    };
    auto add = [&](std::string suffix, std::vector<Shape> shapes, int64_t dim, std::vector<Shape> gc,
                   std::map<DType, Tol> tol = tight_tol()) {
      v.push_back({.name = n + "_" + suffix, .family = F::softmax, .shapes = std::move(shapes), .fn = sm(dim),
                   .dist = Dist::normal, .parity = std::move(tol), .gradcheck_shapes = std::move(gc)});
    };
    add("rows_warp", {{37, 100}}, 1, {{3, 5}});
    add("rows_block", {{5, 3000}}, -1, {{3, 4, 5}});
    add("inner_stride", {{3, 10, 7}}, 1, {{3, 4, 5}});
    add("dim0", {{10, 33}}, 0, {{3, 4, 5}});
    add("dtypes", {{9, 50}}, 1, {{3, 4}},
        {{f32, {1e-5, 1e-6}}, {f64, {1e-12, 1e-12}}, {f16, {1e-2, 1e-2}}, {bf16, {2e-2, 5e-2}}});
  }
  v.push_back({.name = "log_softmax_noncontig", .family = F::softmax, .shapes = {{3, 4}},
               .fn = [](L in) { return log_softmax(in[0], 1); }, .make = transposed({0}), .parity = tight_tol()});

  // ---- losses (labels: every 7th ignored)
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    std::string r = red == Reduction::mean ? "mean" : red == Reduction::sum ? "sum" : "none";
    v.push_back({.name = "cross_entropy_" + r, .family = F::loss, .shapes = {{40, 17}},
                 .fn = [red](L in) { return cross_entropy(in[0], in[1], red, 0.1); }, .make = with_labels(),
                 .parity = tight_tol(), .gradcheck_shapes = {{5, 4}}});
    v.push_back({.name = "nll_loss_" + r, .family = F::loss, .shapes = {{40, 17}},
                 .fn = [red](L in) { return nll_loss(in[0], in[1], red); }, .make = with_labels(),
                 .parity = tight_tol(), .gradcheck_shapes = {{4, 3}}});
    v.push_back({.name = "mse_loss_" + r, .family = F::loss, .shapes = {{8, 9}},
                 .fn = [red](L in) { return mse_loss(in[0], in[1], red); }, .dist = Dist::normal,
                 .parity = tight_tol(), .gradcheck_shapes = {{3, 4}, {3, 4}}});
  }
  std::vector<OpCase> losses = {
      {.name = "cross_entropy_large_c", .family = F::loss, .shapes = {{6, 5000}},
       .fn = [](L in) { return cross_entropy(in[0], in[1]); }, .make = with_labels(), .parity = tight_tol(),
       .gradcheck_shapes = {{3, 7}}},
      {.name = "cross_entropy_spatial", .family = F::loss, .shapes = {{3, 5, 4, 2}},
       .fn = [](L in) { return cross_entropy(in[0], in[1], Reduction::mean, 0.2); }, .make = with_labels(),
       .parity = tight_tol(), .gradcheck_shapes = {{2, 3, 2, 2}}},
      {.name = "cross_entropy_noncontig", .family = F::loss, .shapes = {{3, 4}},
       .fn = [](L in) { return cross_entropy(in[0], in[1], Reduction::mean, 0.3); },
       .make = with_labels(/*transposed_logits=*/true), .parity = tight_tol()},
      {.name = "cross_entropy_dtypes", .family = F::loss, .shapes = {{20, 6}},
       .fn = [](L in) { return cross_entropy(in[0], in[1]); }, .make = with_labels(),
       .parity = {{f32, {1e-5, 1e-6}}, {f64, {1e-12, 1e-12}}, {bf16, {2e-2, 2e-2}}}},
      {.name = "cross_entropy_none_f16", .family = F::loss, .shapes = {{20, 6}},
       .fn = [](L in) { return cross_entropy(in[0], in[1], Reduction::none); }, .make = with_labels(),
       .parity = {{f16, {1e-2, 1e-2}}},
       .no_gradcheck = "the f16 parity row of cross_entropy_none, which is gradchecked"},
      {.name = "nll_loss_spatial", .family = F::loss, .shapes = {{3, 5, 4}},
       .fn = [](L in) { return nll_loss(in[0], in[1]); }, .make = with_labels(), .parity = tight_tol()},
  };
  v.insert(v.end(), losses.begin(), losses.end());

  // ---- nn: conv2d (one case per geometry; cuDNN and the direct kernels on the GPU)
  for (const Conv2dGeometry& g : conv2d_geometries()) {
    std::vector<Shape> shapes{g.x, g.w}, gc;
    if (g.bias) shapes.push_back({g.w[0]});
    if (g.gradcheck_n) {
      gc = shapes;
      gc[0][0] = g.gradcheck_n;
    }
    v.push_back({.name = "conv2d_" + g.name, .family = F::nn, .shapes = shapes,
                 .fn = [g](L in) {
                   return conv2d(in[0], in[1], g.bias ? in[2] : Tensor(), g.stride, g.padding, g.dilation, g.groups);
                 },
                 .dist = Dist::normal, .parity = nn_tol(), .gradcheck_shapes = gc});
  }
  // Pooling: max, average counting the padding, average without it, per geometry.
  for (const Pool2dGeometry& g : pool2d_geometries()) {
    auto pool = [&](std::string name, OpFn fn) {
      v.push_back({.name = name + "_" + g.name, .family = F::nn, .shapes = {g.x}, .fn = std::move(fn),
                   .dist = Dist::normal, .parity = nn_tol()});
    };
    pool("max_pool2d", [g](L in) { return max_pool2d(in[0], g.kernel, g.stride, g.padding); });
    pool("avg_pool2d", [g](L in) { return avg_pool2d(in[0], g.kernel, g.stride, g.padding, true); });
    pool("avg_pool2d_nopad", [g](L in) { return avg_pool2d(in[0], g.kernel, g.stride, g.padding, false); });
  }
  struct Adaptive {
    const char* name;
    Shape x;
    std::array<int64_t, 2> out;
  };
  for (const Adaptive& a : {Adaptive{"3x4", {2, 3, 7, 10}, {3, 4}}, Adaptive{"global", {2, 5, 8, 8}, {1, 1}},
                            Adaptive{"3x2", {2, 2, 7, 5}, {3, 2}}, Adaptive{"4x4", {2, 2, 7, 5}, {4, 4}},
                            Adaptive{"upsample_9x6", {2, 2, 7, 5}, {9, 6}}}) {
    std::array<int64_t, 2> o = a.out;
    v.push_back({.name = std::string("adaptive_avg_pool2d_") + a.name, .family = F::nn, .shapes = {a.x},
                 .fn = [o](L in) { return adaptive_avg_pool2d(in[0], o); }, .dist = Dist::normal,
                 .parity = nn_tol()});
  }
  auto bn_train = [](L in) { return batch_norm(in[0], Tensor(), Tensor(), in[1], in[2], true); };
  std::vector<OpCase> nn = {
      {.name = "batch_norm_train_4d", .family = F::nn, .shapes = {{4, 3, 5, 6}, {3}, {3}}, .fn = bn_train,
       .dist = Dist::normal, .parity = nn_tol()},
      {.name = "batch_norm_train_2d", .family = F::nn, .shapes = {{37, 5}, {5}, {5}}, .fn = bn_train,
       .dist = Dist::normal, .parity = nn_tol(), .gradcheck_shapes = {{5, 3}, {3}, {3}}},
      {.name = "batch_norm_train_large_s", .family = F::nn, .shapes = {{2, 2, 40, 40}, {2}, {2}}, .fn = bn_train,
       .dist = Dist::normal, .parity = nn_tol(), .gradcheck_shapes = {{2, 2, 5, 5}, {2}, {2}}},
      // Few channels, 16384 elements each: the (channel x range) grid.
      {.name = "batch_norm_train_split", .family = F::nn, .shapes = {{16, 2, 32, 32}, {2}, {2}}, .fn = bn_train,
       .dist = Dist::normal, .parity = nn_tol(), .gradcheck_shapes = {{4, 2, 3, 3}, {2}, {2}}},
      // Running stats updated in place as a side effect; the output does not read them.
      {.name = "batch_norm_train_running_stats", .family = F::nn, .shapes = {{3, 2, 3, 5}, {2}, {2}},
       .fn = [](L in) {
         return batch_norm(in[0], like(in[0], 0.0, 2), like(in[0], 1.0, 2), in[1], in[2], true, 0.1, 1e-5);
       },
       .dist = Dist::normal, .parity = nn_tol()},
      {.name = "batch_norm_train_no_affine", .family = F::nn, .shapes = {{5, 3}},
       .fn = [](L in) { return batch_norm(in[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
       .dist = Dist::normal, .parity = nn_tol()},
      {.name = "batch_norm_eval", .family = F::nn, .shapes = {{4, 3, 5, 6}, {3}, {3}},
       .fn = [](L in) {
         return batch_norm(in[0], like(in[0], 0.25, 3), like(in[0], 1.5, 3), in[1], in[2], false);
       },
       .dist = Dist::normal, .parity = nn_tol(), .gradcheck_shapes = {{3, 3, 3, 5}, {3}, {3}}},
      {.name = "batch_norm_eval_2d", .family = F::nn, .shapes = {{5, 3}, {3}, {3}},
       .fn = [](L in) {
         return batch_norm(in[0], like(in[0], -0.5, 3), like(in[0], 0.75, 3), in[1], in[2], false, 0.1, 1e-5);
       },
       .dist = Dist::normal, .parity = nn_tol()},
      // The same (seed, offset) gives the same mask on both devices and on every
      // evaluation gradcheck makes.
      {.name = "dropout", .family = F::nn, .shapes = {{1001}},
       .fn = [](L in) {
         manual_seed(42);
         return dropout(in[0], 0.3, true);
       },
       .dist = Dist::normal, .parity = {{f32, {1e-6, 1e-6}}, {f64, {1e-12, 1e-12}}},
       .gradcheck_shapes = {{4, 5}}},
      {.name = "dropout_bf16_2d", .family = F::nn, .shapes = {{33, 17}},
       .fn = [](L in) {
         manual_seed(43);
         return dropout(in[0], 0.5, true);
       },
       .dist = Dist::normal, .parity = {{bf16, {1e-2, 1e-2}}},
       .no_gradcheck = "the bf16 parity row of dropout, which is gradchecked"},
  };
  v.insert(v.end(), nn.begin(), nn.end());
  return v;
}

}  // namespace

const std::vector<Conv2dGeometry>& conv2d_geometries() {
  static const std::vector<Conv2dGeometry> g = {
      {"plain", {2, 3, 7, 6}, {4, 3, 3, 3}},
      {"no_bias", {2, 3, 5, 5}, {2, 3, 3, 2}, false},
      {"stride2_pad1", {2, 3, 9, 8}, {5, 3, 3, 3}, true, {2, 2}, {1, 1}},
      {"asym_stride_pad", {1, 2, 7, 9}, {3, 2, 2, 3}, true, {1, 3}, {2, 0}},
      {"dilation", {2, 2, 9, 8}, {3, 2, 3, 3}, true, {1, 1}, {1, 2}, {2, 3}},
      {"groups", {2, 4, 6, 5}, {6, 2, 3, 3}, true, {1, 1}, {1, 1}, {1, 1}, 2},
      {"depthwise", {2, 3, 6, 6}, {3, 1, 3, 3}, false, {2, 1}, {1, 1}, {1, 1}, 3},
      {"pointwise", {3, 4, 5, 3}, {2, 4, 1, 1}},
      {"pointwise_stride", {2, 4, 5, 5}, {3, 4, 1, 1}, true, {2, 2}},
      {"kernel_eq_padded", {1, 1, 3, 3}, {2, 1, 5, 5}, true, {1, 1}, {1, 1}},
      {"batch1", {1, 2, 5, 4}, {3, 2, 3, 3}, true, {1, 1}, {1, 1}},
      {"big_stride", {3, 2, 8, 7}, {2, 2, 2, 2}, true, {3, 4}, {1, 0}},
      // Moved from nn_ops_gpu_test's table: the shapes the CUDA paths were tuned on.
      {"pad1", {2, 3, 9, 8}, {4, 3, 3, 3}, true, {1, 1}, {1, 1}},
      {"stride_dilation", {2, 4, 11, 10}, {6, 4, 3, 2}, true, {2, 1}, {1, 2}, {2, 1}, 1, 1},
      {"groups3_no_bias", {3, 6, 7, 7}, {9, 2, 3, 3}, false, {1, 2}, {1, 1}, {1, 1}, 3, 1},
      {"lenet1", {8, 1, 28, 28}, {6, 1, 5, 5}, true, {1, 1}, {2, 2}, {1, 1}, 1, 1},
      {"pointwise16", {4, 16, 8, 8}, {8, 16, 1, 1}, true, {1, 1}, {0, 0}, {1, 1}, 1, 1},
  };
  return g;
}

const std::vector<Pool2dGeometry>& pool2d_geometries() {
  static const std::vector<Pool2dGeometry> g = {
      {"k2", {2, 3, 6, 6}, {2, 2}, {0, 0}, {0, 0}},
      {"k3s2p1", {2, 2, 7, 9}, {3, 3}, {2, 2}, {1, 1}},
      {"overlap", {1, 2, 5, 6}, {3, 2}, {1, 1}, {1, 0}},
      {"odd", {3, 1, 7, 5}, {2, 3}, {2, 1}, {0, 1}},
      // Moved from nn_ops_gpu_test's table.
      {"k3s2p1_9x8", {2, 3, 9, 8}, {3, 3}, {2, 2}, {1, 1}},
      {"k2_8x8", {2, 3, 8, 8}, {2, 2}, {0, 0}, {0, 0}},
      {"k3x2s2x1p1", {2, 3, 9, 7}, {3, 2}, {2, 1}, {1, 1}},
      {"k3s2p1_9x7", {2, 3, 9, 7}, {3, 3}, {2, 2}, {1, 1}},
  };
  return g;
}

const std::vector<OpCase>& op_cases() {
  static const std::vector<OpCase> cases = build();
  return cases;
}

const OpCase& op_case(const std::string& name) {
  for (const OpCase& c : op_cases())
    if (c.name == name) return c;
  EMBER_THROW("no op case named '", name, "'");
}

TensorList make_inputs(const OpCase& c, const std::vector<Shape>& shapes, DType dtype) {
  if (c.make) return c.make(shapes, dtype);
  TensorList in;
  for (const Shape& s : shapes) in.push_back(draw(s, dtype, c.dist, c.lo, c.hi));
  return in;
}

bool differentiable(const OpCase& c, const TensorList& inputs, size_t i) {
  return is_floating(inputs[i].dtype()) &&
         std::find(c.constant.begin(), c.constant.end(), i) == c.constant.end();
}

Tensor to_device_keeping_layout(const Tensor& t, Device d) {
  if (t.is_contiguous() || t.device() == d) return t.to(d);
  Tensor all = make_view(t, {t.storage()->nbytes() / t.element_size()}, {1}, 0);
  return make_view(all.to(d), t.shape(), t.strides(), t.offset());
}

const std::vector<Shape>& gradcheck_shapes(const OpCase& c) {
  return c.gradcheck_shapes.empty() ? c.shapes : c.gradcheck_shapes;
}

}  // namespace ember::test
