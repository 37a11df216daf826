#!/usr/bin/env python3
"""One LeNet training epoch on MNIST in PyTorch, the reference for bench/lenet_vs_pytorch.sh (CPU)
and scripts/gpu_check.sh (GPU: `lenet_pytorch.py DATA THREADS LIMIT cuda`).

Same model, optimizer (SGD lr 0.01, momentum 0.9, weight decay 5e-4), batch size (64) and
normalization as `build/apps/mnist`; data read from the idx files, shuffled once. Prints one
JSON line with the training time of the epoch (data already in memory, as in ember; on a GPU
the whole set is copied to the device first and the clock stops after a synchronize)."""
import gzip, json, os, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(d, name):
    for p in (os.path.join(d, name), os.path.join(d, name + ".gz")):
        if os.path.exists(p):
            return p
    sys.exit(f"missing {name} in {d}")


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def main():
    data_dir, threads = sys.argv[1], int(sys.argv[2])
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    device = torch.device(sys.argv[4] if len(sys.argv) > 4 else "cpu")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    x = read_idx(find(data_dir, "train-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(data_dir, "train-labels-idx1-ubyte")).astype(np.int64)
    if limit:
        x, y = x[:limit], y[:limit]
    x = torch.from_numpy((x - 0.1307) / 0.3081).unsqueeze(1)
    y = torch.from_numpy(y)
    x, y = x.to(device), y.to(device)
    model = LeNet().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    perm = torch.randperm(len(y)).to(device)
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(0, len(y), 64):
        idx = perm[i:i + 64]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    print(json.dumps({"framework": "pytorch " + torch.__version__, "threads": threads, "device": str(device),
                      "images": len(y), "train_seconds": secs, "images_per_second": len(y) / secs,
                      "final_loss": loss.item()}))


if __name__ == "__main__":
    main()
