// The CPU tiers the op-case table (tests/op_cases.h) drives, one test per case:
//   OpGradcheck/<case>   backward against central differences, f64 on the CPU;
//   OpReference/<case>   the op against its f64 scalar reference in every float dtype.
// The device-parity tier is op_cases_gpu_test.cpp (CTest label gpu, as every *_gpu_test).
#include <cctype>
#include <set>

#include "op_cases.h"
#include "test_util.h"

namespace ember::test {

// Test parameters print as the case's name, not a pointer, in gtest's messages (found by
// argument-dependent lookup, so in OpCase's namespace).
void PrintTo(const OpCase* c, std::ostream* os) { *os << c->name; }

namespace {

constexpr uint64_t kSeed = 1234;

// Central differences cost two forwards per input element: gradcheck shapes stay small so
// the whole tier runs in seconds. A case with big parity shapes sets gradcheck_shapes.
constexpr int64_t kMaxGradcheckElements = 1500;

// ---- the table itself

TEST(OpTable, EntriesAreWellFormed) {
  std::set<std::string> names;
  for (const OpCase& c : op_cases()) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.name.empty());
    for (char ch : c.name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_') << ch;
    EXPECT_TRUE(names.insert(c.name).second) << "listed twice";
    EXPECT_TRUE(bool(c.fn));
    EXPECT_FALSE(c.shapes.empty());
    EXPECT_FALSE(c.parity.empty()) << "no dtype to compare across devices";
    if (c.ref) EXPECT_EQ(c.shapes.size(), 1u) << "a scalar reference is for unary ops";
    if (c.no_gradcheck.empty()) {
      int64_t n = 0;
      for (const Shape& s : gradcheck_shapes(c)) n += shape_numel(s);
      EXPECT_LE(n, kMaxGradcheckElements) << "set smaller gradcheck_shapes";
    }
  }
  EXPECT_EQ(op_case("sigmoid").name, "sigmoid");
  EXPECT_ERROR(op_case("no_such_op"), "no op case named 'no_such_op'");
}

// ---- gradcheck (f64, CPU)

std::vector<const OpCase*> gradchecked() {
  std::vector<const OpCase*> v;
  for (const OpCase& c : op_cases())
    if (c.no_gradcheck.empty()) v.push_back(&c);
  return v;
}

class OpGradcheck : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpGradcheck, BackwardMatchesCentralDifferences) {
  const OpCase& c = *GetParam();
  manual_seed(kSeed);
  TensorList all = make_inputs(c, gradcheck_shapes(c), DType::f64);
  // gradcheck perturbs f64 inputs only: labels, index tensors and constants stay captured.
  TensorList diff;
  std::vector<size_t> at;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!differentiable(c, all, i)) continue;
    all[i].requires_grad_();
    diff.push_back(all[i]);
    at.push_back(i);
  }
  ASSERT_FALSE(diff.empty()) << "no differentiable input: set no_gradcheck";
  expect_gradcheck(
      [&](const TensorList& d) {
        TensorList in = all;
        for (size_t k = 0; k < at.size(); ++k) in[at[k]] = d[k];
        return c.fn(in);
      },
      diff);
}

INSTANTIATE_TEST_SUITE_P(Table, OpGradcheck, ::testing::ValuesIn(gradchecked()),
                         [](const auto& info) { return info.param->name; });

// ---- f64 scalar reference, every float dtype

std::vector<const OpCase*> with_reference() {
  std::vector<const OpCase*> v;
  for (const OpCase& c : op_cases())
    if (c.ref) v.push_back(&c);
  return v;
}

class OpReference : public ::testing::TestWithParam<const OpCase*> {};

TEST_P(OpReference, MatchesF64ReferenceInEveryFloatDType) {
  const OpCase& c = *GetParam();
  // 41 points spanning the domain, its ends included (0 too where the domain holds it).
  std::vector<double> grid;
  for (int i = 0; i <= 40; ++i) grid.push_back(c.lo + (c.hi - c.lo) * i / 40);
  for (DType dt : {DType::f64, DType::f32, DType::f16, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    // A few units of roundoff (f32 2^-24, f16 2^-11, bf16 2^-8) for the op's own rounding
    // and that of its intermediates; f64 leaves room for libm differences.
    double tol = dt == DType::f64 ? 1e-12 : dt == DType::f32 ? 1e-6 : dt == DType::f16 ? 2e-3 : 1.6e-2;
    // Inputs rounded to dt first, so the reference sees what the op sees.
    Tensor x = from_vector(grid, {int64_t(grid.size())}, {.dtype = DType::f64}).to(dt);
    std::vector<double> want;
    for (double xi : x.to_vector<double>()) want.push_back(c.ref(xi));
    Tensor y = c.fn({x});
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_TRUE(all_close(y, from_vector(want, y.shape(), {.dtype = DType::f64}), tol, tol));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, OpReference, ::testing::ValuesIn(with_reference()),
                         [](const auto& info) { return info.param->name; });

}  // namespace
}  // namespace ember::test
