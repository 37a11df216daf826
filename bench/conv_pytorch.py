#!/usr/bin/env python3
"""PyTorch's side of bench_nn's conv2d rows (CPU, f32): the same shapes, forward and
forward+backward (gradients of input, weight and bias against ones), median of ITERS runs
after one warm-up.

Usage: conv_pytorch.py THREADS [ITERS] [NAME_FILTER]
Prints one line per shape and pass: conv2d/<pass>/<name>  <median ms>."""
import statistics, sys, time

import torch
import torch.nn.functional as F

# bench/bench_nn.cpp's kConvs: name, n, c, h, o, k, s, p
SHAPES = [
    ("lenet_c1_b64", 64, 1, 28, 6, 5, 1, 2), ("lenet_c2_b64", 64, 6, 14, 16, 5, 1, 0),
    ("lenet_c1", 128, 1, 28, 6, 5, 1, 2), ("lenet_c2", 128, 6, 14, 16, 5, 1, 0),
    ("r20_16x32x32", 128, 16, 32, 16, 3, 1, 1), ("r20_32x16x16", 128, 32, 16, 32, 3, 1, 1),
    ("r20_64x8x8", 128, 64, 8, 64, 3, 1, 1), ("r20_down_16to32_s2", 128, 16, 32, 32, 3, 2, 1),
    ("r18_64x32x32", 128, 64, 32, 64, 3, 1, 1), ("r18_128x16x16", 128, 128, 16, 128, 3, 1, 1),
    ("r18_256x8x8", 128, 256, 8, 256, 3, 1, 1), ("r18_512x4x4", 128, 512, 4, 512, 3, 1, 1),
]


def main():
    threads = int(sys.argv[1])
    iters = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    filt = sys.argv[3] if len(sys.argv) > 3 else ""
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    for backward in (False, True):
        for name, n, c, h, o, k, s, p in SHAPES:
            if filt not in name:
                continue
            x = torch.randn(n, c, h, h, requires_grad=backward)
            w = (torch.randn(o, c, k, k) * 0.1).requires_grad_(backward)
            b = torch.zeros(o, requires_grad=backward)

            def step():
                y = F.conv2d(x, w, b, s, p)
                if backward:
                    torch.autograd.grad([y], [x, w, b], [torch.ones_like(y)])

            step()
            times = []
            for _ in range(iters):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
            print(f"conv2d/{'fwd_bwd' if backward else 'fwd'}/{name}  {statistics.median(times) * 1e3:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
