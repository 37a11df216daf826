// StridedLayout::offset_of32, the 32-bit index math of the CUDA strided kernels (they take
// it when n < 2^31), against offset_of on random layouts; it is host-device code, so the
// CPU checks the arithmetic the GPU runs.
#include <random>

#include "core/strided_layout.h"
#include "test_util.h"

using namespace ember;

TEST(LayoutIndex, ThirtyTwoBitOffsetsEqualSixtyFourBitOnes) {
  std::mt19937_64 rng(7);
  for (int it = 0; it < 2000; ++it) {
    StridedLayout l;
    l.ndim = 1 + int(rng() % 6);
    int64_t n = 1;
    for (int d = 0; d < l.ndim; ++d) {
      l.sizes[d] = 1 + int64_t(rng() % 40);
      l.strides[d] = int64_t(rng() % 3) == 0 ? 0 : int64_t(rng() % 100000);  // broadcast dims too
      n *= l.sizes[d];
    }
    for (int k = 0; k < 50; ++k) {
      int64_t i = int64_t(rng() % uint64_t(n));
      ASSERT_EQ(l.offset_of32(uint32_t(i)), l.offset_of(i)) << "ndim " << l.ndim << " i " << i;
      ASSERT_EQ(l.offset<true>(i), l.offset<false>(i));
    }
  }
  // Sizes whose product is just below 2^31, and strides whose offsets need 64 bits.
  StridedLayout big;
  big.ndim = 2;
  big.sizes[0] = 46340;
  big.sizes[1] = 46340;
  big.strides[0] = int64_t(1) << 33;
  big.strides[1] = 3;
  const int64_t last = 46340LL * 46340LL - 1;
  EXPECT_EQ(big.offset_of32(uint32_t(last)), big.offset_of(last));
}
