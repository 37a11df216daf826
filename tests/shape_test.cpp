// Shape and index ops: values against hand-computed results, storage sharing of views,
// non-contiguous inputs, negative dims, error paths, hand-computed gradients. The gradchecks
// (views, slicing, cat/stack, split/chunk, pad, index_select/gather) are op-case table rows
// (tests/op_cases.cpp).
#include <climits>
#include <numeric>

#include "test_util.h"

namespace ember {
namespace {

using test::all_close;

/// 0, 1, 2, ... in f64 with the given shape.
Tensor iota(const Shape& shape, DType dtype = DType::f64) {
  std::vector<double> v(size_t(shape_numel(shape)));
  std::iota(v.begin(), v.end(), 0.0);
  return from_vector(v, shape, {.dtype = dtype});
}

Tensor f64(const std::vector<double>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = DType::f64});
}

Tensor i64(const std::vector<int64_t>& v, const Shape& shape) {
  return from_vector(v, shape, {.dtype = DType::i64});
}

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

// ---- flatten, squeeze, unsqueeze

TEST(Shape, Flatten) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(flatten(x).shape(), (Shape{24}));
  EXPECT_EQ(flatten(x, 1).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(x, 0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(x.flatten(-2, -1).shape(), (Shape{2, 12}));
  EXPECT_EQ(flatten(x, 1, 1).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(vals(flatten(x)), vals(x));
  EXPECT_EQ(flatten(scalar_tensor(3.0)).shape(), (Shape{1}));
  // A non-contiguous input is copied in row-major order of its view.
  Tensor t = transpose(iota({2, 3}), 0, 1);  // [[0,3],[1,4],[2,5]]
  EXPECT_EQ(vals(flatten(t)), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_ERROR(flatten(x, 2, 1), "comes after end_dim");
  EXPECT_ERROR(flatten(x, 3), "out of range");
}

TEST(Shape, Squeeze) {
  Tensor x = iota({1, 3, 1, 2});
  EXPECT_EQ(squeeze(x).shape(), (Shape{3, 2}));
  EXPECT_EQ(squeeze(x, 0).shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(x.squeeze(-2).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(squeeze(x, 1).shape(), (Shape{1, 3, 1, 2}));  // size 3: kept, as PyTorch
  EXPECT_EQ(vals(squeeze(x)), vals(x));
  EXPECT_EQ(squeeze(scalar_tensor(1.0)).shape(), Shape{});
  EXPECT_ERROR(squeeze(x, 4), "out of range");
  EXPECT_ERROR(squeeze(x, -5), "out of range");
}

TEST(Shape, Unsqueeze) {
  Tensor x = iota({2, 3});
  EXPECT_EQ(unsqueeze(x, 0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(unsqueeze(x, 1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(unsqueeze(x, 2).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(x.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(unsqueeze(x, -3).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(unsqueeze(scalar_tensor(2.0), 0).shape(), (Shape{1}));
  EXPECT_TRUE(unsqueeze(x, 1).is_contiguous());
  EXPECT_EQ(vals(unsqueeze(x, 1)), vals(x));
  EXPECT_ERROR(unsqueeze(x, 3), "out of range");
  EXPECT_ERROR(unsqueeze(x, -4), "out of range");
}

// ---- transpose, permute, expand

TEST(Shape, Transpose) {
  Tensor x = iota({2, 3});
  Tensor t = transpose(x, 0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(vals(t), (std::vector<double>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(vals(x.t()), vals(t));
  EXPECT_EQ(vals(transpose(x, -1, -2)), vals(t));
  Tensor y = iota({2, 3, 4});  // y[i,j,k] = 12i + 4j + k
  Tensor z = transpose(y, 0, 2);  // z[k,j,i]
  EXPECT_EQ(z.shape(), (Shape{4, 3, 2}));
  std::vector<double> zv = vals(z);
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) EXPECT_EQ(zv[size_t(k * 6 + j * 2 + i)], 12 * i + 4 * j + k);
  EXPECT_ERROR(transpose(x, 0, 2), "out of range");
}

TEST(Shape, Permute) {
  Tensor y = iota({2, 3, 4});
  Tensor p = permute(y, {2, 0, 1});  // p[k,i,j] = y[i,j,k]
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  std::vector<double> pv = vals(p);
  for (int k = 0; k < 4; ++k)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(pv[size_t(k * 6 + i * 3 + j)], 12 * i + 4 * j + k);
  EXPECT_EQ(vals(y.permute({-1, 0, 1})), pv);
  EXPECT_ERROR(permute(y, {0, 1}), "got 2 dims");
  EXPECT_ERROR(permute(y, {0, 1, 1}), "appears twice");
  EXPECT_ERROR(permute(y, {0, 1, 3}), "out of range");
}

TEST(Shape, Expand) {
  Tensor x = f64({1, 2, 3}, {3, 1});
  Tensor e = expand(x, {2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  std::vector<double> ev = vals(e);
  for (int a = 0; a < 2; ++a)
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(ev[size_t(a * 12 + i * 4 + k)], i + 1);
  EXPECT_EQ(x.expand({-1, 5}).shape(), (Shape{3, 5}));
  EXPECT_EQ(expand(scalar_tensor(7.0), {2, 2}).to_vector<double>(), (std::vector<double>{7, 7, 7, 7}));
  EXPECT_ERROR(expand(x, {3, 4, 2}), "only size-1 dims can grow");
  EXPECT_ERROR(expand(iota({2, 3}), {3, 3}), "cannot expand shape [2, 3]");
  EXPECT_ERROR(expand(x, {4}), "fewer dims");
  EXPECT_ERROR(expand(x, {-1, 3, 4}), "-1 can only keep");
}

// ---- narrow, slice, select

TEST(Shape, Narrow) {
  Tensor x = iota({4, 3});
  Tensor n = narrow(x, 0, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(n), (std::vector<double>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(vals(x.narrow(1, -2, 2)), (std::vector<double>{1, 2, 4, 5, 7, 8, 10, 11}));
  EXPECT_EQ(narrow(x, 0, 4, 0).shape(), (Shape{0, 3}));
  EXPECT_ERROR(narrow(x, 0, 3, 2), "exceeds dim 0 of size 4");
  EXPECT_ERROR(narrow(x, 0, 5, 0), "out of range");
  EXPECT_ERROR(narrow(x, 0, 0, -1), "length -1");
  EXPECT_ERROR(narrow(x, 2, 0, 1), "out of range");
  EXPECT_ERROR(narrow(scalar_tensor(1.0), 0, 0, 1), "0-d");
}

TEST(Shape, Slice) {
  Tensor x = iota({10});
  EXPECT_EQ(vals(slice(x, 0, 1, 8, 3)), (std::vector<double>{1, 4, 7}));
  EXPECT_EQ(vals(slice(x, 0, -3, INT64_MAX)), (std::vector<double>{7, 8, 9}));
  EXPECT_EQ(vals(slice(x, 0, 2, -5)), (std::vector<double>{2, 3, 4}));
  EXPECT_EQ(vals(slice(x, 0, 7, 100, 2)), (std::vector<double>{7, 9}));
  EXPECT_EQ(vals(slice(x, 0, -100, 2)), (std::vector<double>{0, 1}));
  EXPECT_EQ(slice(x, 0, 5, 2).shape(), (Shape{0}));
  EXPECT_EQ(slice(x, 0, 20, 30).shape(), (Shape{0}));
  Tensor y = iota({2, 5});
  Tensor s = slice(y, -1, 0, 5, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.strides(), (Shape{5, 2}));
  EXPECT_EQ(vals(s), (std::vector<double>{0, 2, 4, 5, 7, 9}));
  EXPECT_ERROR(slice(x, 0, 0, 5, 0), "step must be positive");
  EXPECT_ERROR(slice(x, 0, 0, 5, -1), "step must be positive");
  EXPECT_ERROR(slice(x, 1, 0, 5), "out of range");
}

TEST(Shape, Select) {
  Tensor x = iota({2, 3});
  EXPECT_EQ(select(x, 0, 1).shape(), (Shape{3}));
  EXPECT_EQ(vals(select(x, 0, 1)), (std::vector<double>{3, 4, 5}));
  EXPECT_EQ(vals(x.select(1, -1)), (std::vector<double>{2, 5}));
  EXPECT_EQ(vals(x[0]), (std::vector<double>{0, 1, 2}));
  EXPECT_EQ(x[1][2].item(), 5.0);
  EXPECT_EQ(select(x, 0, 1).dim(), 1);
  EXPECT_ERROR(select(x, 0, 2), "index 2 out of range for dim 0 of size 2");
  EXPECT_ERROR(select(x, 1, -4), "expected in [-3, 2]");
  EXPECT_ERROR(select(x, 2, 0), "out of range");
  EXPECT_ERROR(select(scalar_tensor(1.0), 0, 0), "0-d");
}

// ---- views share storage

TEST(Shape, ViewsShareStorage) {
  NoGradGuard ng;
  Tensor base = zeros({3, 4});
  for (const Tensor& v : {transpose(base, 0, 1), permute(base, {1, 0}), unsqueeze(base, 0),
                          squeeze(unsqueeze(base, 1)), narrow(base, 1, 1, 2), slice(base, 1, 0, 4, 2),
                          select(base, 0, 1), expand(unsqueeze(base, 0), {2, 3, 4})}) {
    EXPECT_EQ(v.storage().get(), base.storage().get());
  }
  // Writes through views land in the base.
  select(transpose(base, 0, 1), 0, 1).fill_(7.0);  // base[:, 1] = 7
  narrow(base, 0, 2, 1).fill_(1.0);                // base[2, :] = 1
  slice(select(base, 0, 0), 0, 0, 4, 3).fill_(5.0);  // base[0, 0] = base[0, 3] = 5
  EXPECT_EQ(vals(base), (std::vector<double>{5, 7, 0, 5, 0, 7, 0, 0, 1, 1, 1, 1}));
  TensorList parts = split(base, 1, 1);
  ASSERT_EQ(parts.size(), 4u);
  parts[2].fill_(-1.0);
  EXPECT_EQ(vals(select(base, 1, 2)), (std::vector<double>{-1, -1, -1}));
  for (const Tensor& p : chunk(base, 2, 0)) EXPECT_EQ(p.storage().get(), base.storage().get());
  // And the base's writes are seen by a view.
  Tensor v = transpose(base, 0, 1);
  base.fill_(3.0);
  EXPECT_EQ(vals(v), std::vector<double>(12, 3.0));
}

// ---- cat, stack

TEST(Shape, Cat) {
  Tensor a = iota({2, 2}), b = f64({10, 11, 12, 13, 14, 15}, {3, 2});
  Tensor c = cat({a, b}, 0);
  EXPECT_EQ(c.shape(), (Shape{5, 2}));
  EXPECT_EQ(vals(c), (std::vector<double>{0, 1, 2, 3, 10, 11, 12, 13, 14, 15}));
  Tensor d = cat({a, transpose(iota({2, 2}), 0, 1)}, -1);  // second input non-contiguous
  EXPECT_EQ(d.shape(), (Shape{2, 4}));
  EXPECT_EQ(vals(d), (std::vector<double>{0, 1, 0, 2, 2, 3, 1, 3}));
  EXPECT_EQ(vals(cat({a, zeros({0, 2}, {.dtype = DType::f64}), a})), (std::vector<double>{0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(vals(cat({a})), vals(a));
  EXPECT_ERROR(cat({a, b}, 1), "tensor 1 has shape [3, 2] but tensor 0 has shape [2, 2]");
  EXPECT_ERROR(cat({a, iota({2})}), "tensor 1 has shape [2]");
  EXPECT_ERROR(cat({a, iota({2, 2}, DType::f32)}), "tensor 1 has dtype f32");
  EXPECT_ERROR(cat({}), "non-empty");
  EXPECT_ERROR(cat({a, Tensor()}), "tensor 1 is undefined");
  EXPECT_ERROR(cat({a, b}, 2), "out of range");
  EXPECT_ERROR(cat({scalar_tensor(1.0), scalar_tensor(2.0)}), "0-d");
  // Integer tensors concatenate too.
  EXPECT_EQ(cat({i64({1, 2}, {2}), i64({3}, {1})}).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(Shape, Stack) {
  Tensor a = f64({1, 2, 3}, {3}), b = f64({4, 5, 6}, {3});
  EXPECT_EQ(stack({a, b}).shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(stack({a, b})), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(vals(stack({a, b}, 1)), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(vals(stack({a, b}, -1)), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  Tensor m = iota({2, 2});
  Tensor s = stack({m, transpose(m, 0, 1)}, 2);  // (2, 2, 2): s[i,j,k]
  EXPECT_EQ(s.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(vals(s), (std::vector<double>{0, 0, 1, 2, 2, 1, 3, 3}));
  EXPECT_EQ(stack({scalar_tensor(1.0), scalar_tensor(2.0)}).shape(), (Shape{2}));
  EXPECT_ERROR(stack({a, iota({4})}), "tensor 1 has shape [4] but tensor 0 has shape [3]");
  EXPECT_ERROR(stack({a, b}, 2), "out of range");
  EXPECT_ERROR(stack({}), "non-empty");
}

// ---- split, chunk

TEST(Shape, Split) {
  Tensor x = iota({5, 2});
  TensorList p = split(x, 2);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(p[2].shape(), (Shape{1, 2}));
  EXPECT_EQ(vals(p[1]), (std::vector<double>{4, 5, 6, 7}));
  EXPECT_EQ(vals(p[2]), (std::vector<double>{8, 9}));
  TensorList q = split(x, 1, -1);
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(vals(q[1]), (std::vector<double>{1, 3, 5, 7, 9}));
  EXPECT_EQ(split(x, 10).size(), 1u);
  EXPECT_ERROR(split(x, 0), "split_size must be positive");
  EXPECT_ERROR(split(x, 1, 2), "out of range");
  EXPECT_ERROR(split(scalar_tensor(1.0), 1), "0-d");
}

TEST(Shape, Chunk) {
  Tensor x = iota({5});
  TensorList c = chunk(x, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(vals(c[0]), (std::vector<double>{0, 1}));
  EXPECT_EQ(vals(c[2]), (std::vector<double>{4}));
  // As PyTorch: ceil(6 / 4) = 2 per piece, so only 3 pieces.
  EXPECT_EQ(chunk(iota({6}), 4).size(), 3u);
  EXPECT_EQ(chunk(iota({2, 6}), 2, 1)[1].shape(), (Shape{2, 3}));
  EXPECT_ERROR(chunk(x, 0), "must be positive");
}

// ---- pad

TEST(Shape, Pad) {
  Tensor x = iota({2, 2});
  Tensor p = pad(x, {1, 2}, -1.0);  // last dim: 1 before, 2 after
  EXPECT_EQ(p.shape(), (Shape{2, 5}));
  EXPECT_EQ(vals(p), (std::vector<double>{-1, 0, 1, -1, -1, -1, 2, 3, -1, -1}));
  Tensor q = pad(x, {0, 1, 1, 0});  // last dim: 0/1, first dim: 1/0
  EXPECT_EQ(q.shape(), (Shape{3, 3}));
  EXPECT_EQ(vals(q), (std::vector<double>{0, 0, 0, 0, 1, 0, 2, 3, 0}));
  // Non-contiguous input.
  EXPECT_EQ(vals(pad(transpose(x, 0, 1), {1, 0})), (std::vector<double>{0, 0, 2, 0, 1, 3}));
  // Negative padding crops.
  Tensor y = iota({2, 4});
  EXPECT_EQ(vals(pad(y, {-1, 1}, 9.0)), (std::vector<double>{1, 2, 3, 9, 5, 6, 7, 9}));
  EXPECT_EQ(pad(y, {-4, 0}).shape(), (Shape{2, 0}));
  EXPECT_EQ(pad(y, {-5, 2}, 4.0).shape(), (Shape{2, 1}));  // cropped past the input: only padding
  EXPECT_EQ(vals(pad(y, {-5, 2}, 4.0)), (std::vector<double>{4, 4}));
  EXPECT_EQ(vals(pad(y, {})), vals(y));
  EXPECT_EQ(pad(iota({2}, DType::i64), {1, 1}, 7).to_vector<int64_t>(), (std::vector<int64_t>{7, 0, 1, 7}));
  EXPECT_ERROR(pad(y, {1}), "pairs");
  EXPECT_ERROR(pad(y, {1, 1, 1, 1, 1, 1}), "3 padded dims for a tensor of 2 dims");
  EXPECT_ERROR(pad(y, {-3, -2}), "negative size -1");
}

// ---- index_select, gather

TEST(Index, IndexSelect) {
  Tensor x = iota({3, 4});
  Tensor r = index_select(x, 0, i64({2, 0, 2}, {3}));
  EXPECT_EQ(r.shape(), (Shape{3, 4}));
  EXPECT_EQ(vals(r), (std::vector<double>{8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11}));
  Tensor idx32 = from_vector(std::vector<int32_t>{3, 1}, {2}, {.dtype = DType::i32});
  EXPECT_EQ(vals(index_select(x, -1, idx32)), (std::vector<double>{3, 1, 7, 5, 11, 9}));
  EXPECT_EQ(index_select(x, 0, i64({1}, {})).shape(), (Shape{1, 4}));  // 0-d index
  EXPECT_EQ(index_select(x, 1, i64({}, {0})).shape(), (Shape{3, 0}));
  // Non-contiguous input and index.
  Tensor xt = transpose(x, 0, 1);  // (4, 3)
  Tensor sidx = slice(i64({0, 9, 2, 9}, {4}), 0, 0, 4, 2);  // [0, 2], stride 2
  EXPECT_EQ(vals(index_select(xt, 1, sidx)), (std::vector<double>{0, 8, 1, 9, 2, 10, 3, 11}));
  // Integer data.
  EXPECT_EQ(index_select(iota({4}, DType::i64), 0, i64({3, 3}, {2})).to_vector<int64_t>(),
            (std::vector<int64_t>{3, 3}));
  EXPECT_ERROR(index_select(x, 0, i64({0, 5}, {2})),
               "index 5 at position 1 is out of range for dim 0 of size 3 (expected 0 <= index < 3)");
  EXPECT_ERROR(index_select(x, 1, i64({-1}, {1})), "index -1");
  EXPECT_ERROR(index_select(x, 0, f64({0}, {1})), "expected an i64 or i32 index tensor, got f64");
  EXPECT_ERROR(index_select(x, 0, i64({0, 1}, {1, 2})), "1-D");
  EXPECT_ERROR(index_select(x, 2, i64({0}, {1})), "out of range");
  EXPECT_ERROR(index_select(scalar_tensor(1.0), 0, i64({0}, {1})), "0-d");
}

TEST(Index, Gather) {
  Tensor x = f64({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(vals(gather(x, 1, i64({0, 0, 1, 0}, {2, 2}))), (std::vector<double>{1, 1, 4, 3}));
  EXPECT_EQ(vals(gather(x, 0, i64({1, 0, 0, 0}, {2, 2}))), (std::vector<double>{3, 2, 1, 2}));
  // The index may be smaller than the input in other dims, and larger along dim.
  Tensor y = iota({3, 4});
  Tensor g = gather(y, 1, i64({3, 0, 0, 1, 1, 1}, {2, 3}));
  EXPECT_EQ(g.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(g), (std::vector<double>{3, 0, 0, 5, 5, 5}));
  EXPECT_EQ(gather(y, 0, i64({2, 2, 2, 2, 2, 2, 2, 2}, {4, 2})).shape(), (Shape{4, 2}));
  // Non-contiguous input and index, negative dim.
  Tensor yt = transpose(y, 0, 1);  // (4, 3): yt[i,j] = y[j,i] = 4j + i
  Tensor it = transpose(i64({2, 0, 1, 2}, {2, 2}), 0, 1);  // [[2,1],[0,2]]
  EXPECT_EQ(vals(gather(yt, -1, it)), (std::vector<double>{8, 4, 1, 9}));
  EXPECT_ERROR(gather(x, 1, i64({0, 2}, {1, 2})),
               "index 2 at position [0, 1] is out of range for dim 1 of size 2");
  EXPECT_ERROR(gather(x, 1, i64({0, 1}, {2})), "the index has 1 dims");
  EXPECT_ERROR(gather(x, 1, i64({0, 0, 0, 0, 0, 0}, {3, 2})), "exceeds input shape [2, 2] at dim 0");
  EXPECT_ERROR(gather(x, 0, from_vector(std::vector<uint8_t>{0}, {1, 1}, {.dtype = DType::u8})),
               "got u8");
}

// ---- backward by hand

TEST(ShapeGrad, HandComputed) {
  // expand: the gradient sums over the broadcast dims.
  Tensor x = f64({1, 2}, {2, 1}).requires_grad_();
  sum(expand(x, {3, 2, 4})).backward();
  EXPECT_EQ(vals(x.grad()), (std::vector<double>{12, 12}));
  // select/narrow: zeros except the taken positions.
  Tensor y = iota({2, 3}).requires_grad_();
  (sum(select(y, 1, 2)) + sum(narrow(y, 0, 1, 1)) * 2.0).backward();
  EXPECT_EQ(vals(y.grad()), (std::vector<double>{0, 0, 1, 2, 2, 3}));
  // slice with a step.
  Tensor z = iota({7}).requires_grad_();
  sum(slice(z, 0, 1, 7, 3)).backward();
  EXPECT_EQ(vals(z.grad()), (std::vector<double>{0, 1, 0, 0, 1, 0, 0}));
  // index_select and gather accumulate on repeated indices.
  Tensor w = iota({3, 2}).requires_grad_();
  sum(index_select(w, 0, i64({2, 0, 2, 2}, {4}))).backward();
  EXPECT_EQ(vals(w.grad()), (std::vector<double>{1, 1, 0, 0, 3, 3}));
  Tensor v = iota({2, 3}).requires_grad_();
  sum(gather(v, 1, i64({0, 0, 2, 1, 1, 1}, {2, 3}))).backward();
  EXPECT_EQ(vals(v.grad()), (std::vector<double>{2, 0, 1, 0, 3, 0}));
  // split: a piece that is not used gets zeros.
  Tensor s = iota({5}).requires_grad_();
  TensorList parts = split(s, 2);
  (sum(parts[0]) + sum(parts[2]) * 3.0).backward();
  EXPECT_EQ(vals(s.grad()), (std::vector<double>{1, 1, 0, 0, 3}));
  // pad: the gradient of the kept region; cropped elements get zero.
  Tensor p = iota({4}).requires_grad_();
  sum(pad(p, {-1, 2}) * f64({1, 2, 3, 4, 5}, {5})).backward();
  EXPECT_EQ(vals(p.grad()), (std::vector<double>{0, 1, 2, 3}));
  // cat/stack: slices of the gradient go back to each input.
  Tensor a = iota({2}).requires_grad_(), b = iota({1}).requires_grad_();
  (cat({a, b}) * f64({1, 2, 3}, {3})).sum().backward();
  EXPECT_EQ(vals(a.grad()), (std::vector<double>{1, 2}));
  EXPECT_EQ(vals(b.grad()), (std::vector<double>{3}));
  Tensor c = iota({2}).requires_grad_(), d = iota({2}).requires_grad_();
  (stack({c, d}, 1) * f64({1, 2, 3, 4}, {2, 2})).sum().backward();
  EXPECT_EQ(vals(c.grad()), (std::vector<double>{1, 3}));
  EXPECT_EQ(vals(d.grad()), (std::vector<double>{2, 4}));
  // Views of a leaf that does not require grad record nothing.
  Tensor plain = iota({2, 2});
  EXPECT_FALSE(transpose(plain, 0, 1).requires_grad());
  EXPECT_EQ(transpose(plain, 0, 1).grad_fn(), nullptr);
  // Under no-grad nothing is recorded either.
  {
    NoGradGuard ng;
    EXPECT_FALSE(transpose(y, 0, 1).requires_grad());
    EXPECT_FALSE(cat({a, b}).requires_grad());
  }
}

TEST(ShapeGrad, SavedIndexModifiedInPlace) {
  Tensor x = iota({3}).requires_grad_();
  Tensor idx = i64({0, 1}, {2});
  Tensor y = index_select(x, 0, idx);
  idx.fill_(2.0);
  EXPECT_ERROR(sum(y).backward(), "IndexSelectBackward");
}

}  // namespace
}  // namespace ember
