// In-place ops whose input overlaps their output (Note [In-place overlap] in
// tensor/layout.h): the result must equal the out-of-place op on every device (here the
// CPU, plus cuda:0 when present), and the identical view still runs without a copy.
#include "tensor/layout.h"
#include "test_util.h"

using namespace ember;

namespace {

// 0, 1, 2, ... as f32 (exact, so the comparisons below are bit for bit).
Tensor iota(const Shape& shape, Device d) {
  return arange(0.0, double(shape_numel(shape)), 1.0, {.dtype = DType::f32}).reshape(shape).to(d);
}

class InplaceOverlap : public ::testing::TestWithParam<Device> {};

TEST_P(InplaceOverlap, AddTransposeOfItselfEqualsOutOfPlace) {
  NoGradGuard ng;
  Tensor x = iota({5, 5}, GetParam());
  Tensor expect = add(x, x.t());  // computed before x changes
  x.add_(x.t());
  EXPECT_EQ(x.to_vector<float>(), expect.to_vector<float>());
  // Symmetric by construction: a racy or in-order overwrite breaks this.
  EXPECT_EQ(x.to_vector<float>(), x.t().contiguous().to_vector<float>());
}

TEST_P(InplaceOverlap, SubMulDivWithShiftedSliceEqualOutOfPlace) {
  NoGradGuard ng;
  for (int op = 0; op < 3; ++op) {
    Tensor base = iota({10}, GetParam()) + 1.0;
    Tensor out = base.narrow(0, 1, 8), in = base.narrow(0, 0, 8);  // out[i] reads in[i] = out[i-1]
    Tensor expect = op == 0 ? sub(out, in) : op == 1 ? mul(out, in) : div(out, in);
    if (op == 0) out.sub_(in);
    if (op == 1) out.mul_(in);
    if (op == 2) out.div_(in);
    EXPECT_EQ(out.to_vector<float>(), expect.to_vector<float>()) << "op " << op;
  }
}

TEST_P(InplaceOverlap, BroadcastRowOfItselfEqualsOutOfPlace) {
  NoGradGuard ng;
  Tensor x = iota({4, 3}, GetParam());
  Tensor row = x.select(0, 0);  // broadcast over the rows, row 0 included
  Tensor expect = add(x, row);
  x.add_(row);
  EXPECT_EQ(x.to_vector<float>(), expect.to_vector<float>());
}

TEST_P(InplaceOverlap, CopyFromOverlappingViewEqualsCopyOfClone) {
  NoGradGuard ng;
  Tensor x = iota({4, 4}, GetParam());
  Tensor expect = x.t().clone();
  x.copy_(x.t());
  EXPECT_EQ(x.to_vector<float>(), expect.to_vector<float>());

  Tensor y = iota({12}, GetParam());
  Tensor want = y.narrow(0, 0, 8).clone();
  y.narrow(0, 4, 8).copy_(y.narrow(0, 0, 8));  // a forward shift, the order-sensitive case
  EXPECT_EQ(y.narrow(0, 4, 8).to_vector<float>(), want.to_vector<float>());
}

TEST_P(InplaceOverlap, IdenticalViewAndDisjointViewsNeedNoCopy) {
  NoGradGuard ng;
  Tensor x = iota({6}, GetParam());
  EXPECT_FALSE(overlaps_partially(x, x));
  EXPECT_FALSE(overlaps_partially(x.narrow(0, 0, 3), x.narrow(0, 3, 3)));
  EXPECT_TRUE(overlaps_partially(x.narrow(0, 1, 3), x.narrow(0, 0, 3)));
  EXPECT_TRUE(overlaps_partially(x.reshape({2, 3}), x.narrow(0, 0, 3)));  // broadcast row
  EXPECT_FALSE(overlaps_partially(x, iota({6}, GetParam())));              // other storage
  EXPECT_TRUE(unaliased_input(x, x).is_same(x));
  x.add_(x);
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{0, 2, 4, 6, 8, 10}));
}

INSTANTIATE_TEST_SUITE_P(Devices, InplaceOverlap, ::testing::ValuesIn(test::devices()),
                         [](const auto& info) { return info.param.is_cpu() ? "cpu" : "cuda"; });

}  // namespace
