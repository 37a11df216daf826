#pragma once
// The op-case table: one entry per op case, and every test tier reads it.
//
// How to add an op
// ----------------
// Add one entry to op_cases() in tests/op_cases.cpp, in its family's block, e.g.
//
//   {.name = "exp", .family = Family::elementwise, .shapes = {{4097}},
//    .fn = [](L in) { return exp(in[0]); },
//    .ref = [](double x) { return std::exp(x); }, .gradcheck_shapes = {{3, 4}}},
//
// and it is
//   - gradchecked in f64 on the CPU (tests/op_cases_test.cpp, OpGradcheck/<name>), unless
//     `no_gradcheck` says why not;
//   - checked against its f64 scalar reference in f64, f32, f16 and bf16 when it has `ref`
//     (OpReference/<name>);
//   - compared CPU vs cuda:0, forward and every input gradient, in each dtype of `parity`
//     (tests/op_cases_gpu_test.cpp, OpParity/<name>_<dtype>; skipped without a GPU);
//   - benchmarked, forward and forward+backward in f32 on every device (bench/bench_ops,
//     `--benchmark_filter=<name>`).
// Nothing else needs to change. Run one case's tests with `ctest -R /<name>` (add `$` for
// the CPU tiers alone) or `--gtest_filter='*/<name>*'`.
//
// This file and op_cases.cpp use no GoogleTest, so bench/ links them too.
#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ember.h"

namespace ember::test {

enum class Family { elementwise, reduction, shape, index, matmul, softmax, loss, nn };
const char* family_name(Family f);

/// |got - ref| <= atol + rtol * |ref| elementwise.
struct Tol {
  double rtol = 0, atol = 0;
};

using OpFn = std::function<Tensor(const TensorList&)>;
/// Makes a case's inputs on the CPU in `dtype` for the given shapes (parity or gradcheck
/// ones). Used where random values in [lo, hi) are not enough: labels, views.
using InputMaker = std::function<TensorList(const std::vector<Shape>& shapes, DType dtype)>;

/// How the default inputs are drawn.
enum class Dist { uniform, normal };

// Parity tolerances shared by a family (the ones its old per-file tables used).
std::map<DType, Tol> default_tol();  // f32 1e-4, f64 1e-10
std::map<DType, Tol> tight_tol();    // f32 1e-5 / 1e-6, f64 1e-10: softmax, losses, var/std
std::map<DType, Tol> nn_tol();       // f32 1e-4, f64 1e-9: conv, pooling, batch norm
std::map<DType, Tol> exact_tol();    // data movement: gradients 1e-5 / 1e-6 (scatter-add order)

struct OpCase {
  std::string name;  // unique, [A-Za-z0-9_]: the test and benchmark name
  Family family = Family::elementwise;
  /// Input shapes for parity and the benchmark (with `make`: what it is given).
  std::vector<Shape> shapes;
  OpFn fn;
  /// Default inputs: uniform in [lo, hi), or standard normal.
  Dist dist = Dist::uniform;
  double lo = -2, hi = 2;
  InputMaker make;  // replaces the default inputs when set
  /// Floating inputs that get no gradient (all others do; integer inputs never).
  std::vector<size_t> constant;
  /// The dtypes compared CPU vs CUDA, with their tolerances.
  std::map<DType, Tol> parity = default_tol();
  /// The op only moves data: the forward must match bit for bit across devices.
  bool exact_forward = false;
  /// Elementwise unary ops: the f64 scalar function the op computes.
  std::function<double(double)> ref;
  /// Smaller shapes for gradcheck (central differences cost two forwards per input
  /// element); empty: `shapes`.
  std::vector<Shape> gradcheck_shapes;
  /// Why this case is not gradchecked; empty: it is.
  std::string no_gradcheck;
};

/// Every case, in family order. Built once.
const std::vector<OpCase>& op_cases();
/// The case called `name`; throws when there is none.
const OpCase& op_case(const std::string& name);

/// The case's inputs on the CPU in `dtype` (from `make` or drawn from the domain); nothing
/// requires grad yet. Seed the generator first for repeatable values.
TensorList make_inputs(const OpCase& c, const std::vector<Shape>& shapes, DType dtype);
/// Whether input i of `inputs` gets a gradient (floating and not constant).
bool differentiable(const OpCase& c, const TensorList& inputs, size_t i);
/// t on device d with the same geometry: a view stays a view of a copy of its whole
/// storage, so the device runs the strided path the CPU ran.
Tensor to_device_keeping_layout(const Tensor& t, Device d);
/// The shapes gradcheck uses.
const std::vector<Shape>& gradcheck_shapes(const OpCase& c);

// Geometries shared with nn_ops_test's naive-loop forward checks (the table makes one
// conv2d case per conv geometry and max/avg/avg-no-pad cases per pool geometry).
struct Conv2dGeometry {
  std::string name;
  Shape x, w;
  bool bias = true;
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1};
  int64_t groups = 1;
  int64_t gradcheck_n = 0;  // batch size for gradcheck; 0: x's
};
const std::vector<Conv2dGeometry>& conv2d_geometries();

struct Pool2dGeometry {
  std::string name;
  Shape x;
  std::array<int64_t, 2> kernel, stride, padding;  // stride {0, 0}: the kernel
};
const std::vector<Pool2dGeometry>& pool2d_geometries();

}  // namespace ember::test
