#include "test_util.h"
TEST(Smoke, AddAndSum) {
  ember::Tensor a = ember::ones({2, 3});
  ember::Tensor b = ember::arange(0.0, 3.0);
  ember::Tensor c = a + b;
  EXPECT_DOUBLE_EQ(ember::sum(c).item(), 12.0);
}
