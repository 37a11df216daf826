// A tiny program that uses ember through find_package: fits y = 3x - 1 + noise with a
// 1-16-1 MLP and plain gradient descent, and exits non-zero unless the loss fell 100x.
#include <cstdio>

#include "ember.h"

using namespace ember;

int main() {
  manual_seed(0);
  Tensor x = uniform({256, 1}, -1, 1);
  Tensor y = x * 3.0 - 1.0 + randn({256, 1}) * 0.01;
  Tensor w1 = (randn({16, 1}) * 0.5).requires_grad_();
  Tensor b1 = zeros({16}).requires_grad_();
  Tensor w2 = (randn({1, 16}) * 0.5).requires_grad_();
  Tensor b2 = zeros({1}).requires_grad_();
  double first = 0, last = 0;
  for (int step = 0; step < 500; ++step) {
    Tensor pred = linear(tanh(linear(x, w1, b1)), w2, b2);
    Tensor loss = mse_loss(pred, y);
    loss.backward();
    {
      NoGradGuard no_grad;
      for (Tensor* p : {&w1, &b1, &w2, &b2}) {
        p->add_(p->grad(), -0.1);
        p->grad().zero_();
      }
    }
    if (step == 0) first = loss.item();
    last = loss.item();
  }
  std::printf("loss %.5f -> %.5f (CUDA built: %d, GPUs: %d)\n", first, last, EMBER_WITH_CUDA,
              cuda::device_count());
  return last < first / 100 ? 0 : 1;
}
