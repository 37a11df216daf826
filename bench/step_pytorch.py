#!/usr/bin/env python3
"""One training step (forward, cross-entropy, backward, SGD) in PyTorch: the reference for
bench_ddp's `step_plain_<model>/<device>` rows (scripts/gpu_check.sh compares the two).

Usage: step_pytorch.py MODEL BATCH ITERS [DEVICE] [--amp fp16|bf16] [--infer]
       MODEL: lenet | convnet | mlp | resnet20 | resnet18
--infer: time the forward pass alone instead, in eval mode under torch.no_grad() (step_ember's
--infer).
--amp: the forward pass and loss under torch.autocast(DEVICE, dtype), fp16 with a GradScaler
(bench_amp's amp_step_<model>/<f16|bf16> rows are ember's side).
Same models as ember's nn::make_model (LeNet; ResNet-20 of He et al. 2016 for CIFAR with
option-A shortcuts: stride-2 subsampling and zero channel padding), SGD lr 0.01 momentum 0.9,
random inputs and labels (as bench_ddp), one warm-up step, then ITERS timed steps, each ended
by a synchronize. Prints one JSON line: median and mean step time, the median process CPU time
per step, and images per second over the mean (as bench_ddp's images_per_s counter: iterations x batch / total time)."""
import contextlib, json, os, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lenet_pytorch import LeNet  # noqa: E402  (the same LeNet as the epoch benchmark)


class ConvNet(nn.Module):
    """The PyTorch MNIST example's CNN, as ember's convnet (dropout in training mode)."""
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv2(F.relu(self.conv1(x)))), 2)
        x = torch.flatten(self.dropout1(x), 1)
        return self.fc2(self.dropout2(F.relu(self.fc1(x))))


class MLP(nn.Module):
    """ember's mlp: 784-512-256-10 with ReLU."""
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 512), nn.Linear(512, 256), nn.Linear(256, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad = stride, planes - in_planes

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        sc = x
        if self.stride != 1 or self.pad > 0:  # option A
            sc = x[:, :, ::self.stride, ::self.stride]
            lo = self.pad // 2
            sc = F.pad(sc, (0, 0, 0, 0, lo, self.pad - lo))
        return F.relu(out + sc)


class ResNet20(nn.Module):
    def __init__(self, n=3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, in_planes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Block18(nn.Module):
    """kuangliu/pytorch-cifar's BasicBlock (ResNet-18 for CIFAR), as ember's resnet18."""
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, in_planes = [], 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for i in range(2):
                layers.append(Block18(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(512, 10)

    def forward(self, x):
        x = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    args = [a for a in sys.argv[1:]]
    amp = None
    if "--amp" in args:
        i = args.index("--amp")
        amp = {"fp16": torch.float16, "bf16": torch.bfloat16}[args[i + 1]]
        del args[i:i + 2]
    infer = "--infer" in args
    if infer:
        args.remove("--infer")
    model_name, batch, iters = args[0], int(args[1]), int(args[2])
    device = torch.device(args[3] if len(args) > 3 else "cpu")
    torch.manual_seed(1)
    model = {"lenet": LeNet, "convnet": ConvNet, "mlp": MLP, "resnet20": ResNet20,
             "resnet18": ResNet18}[model_name]().to(device)
    shape = (batch, 1, 28, 28) if model_name in ("lenet", "convnet", "mlp") else (batch, 3, 32, 32)
    x = torch.randn(shape, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    if hasattr(torch.amp, "GradScaler"):  # torch >= 2.3
        scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    else:  # Debian's torch 1.13: the CUDA scaler (disabled when not needed)
        scaler = torch.cuda.amp.GradScaler(enabled=amp == torch.float16)

    def step():
        ctx = torch.autocast(device.type, dtype=amp) if amp is not None else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize()

    if infer:
        model.eval()

        def step():  # noqa: F811  (the forward pass alone)
            with torch.no_grad():
                model(x)
            if device.type == "cuda":
                torch.cuda.synchronize()

    step()  # warm-up: cuDNN plans, allocator
    times, cpu_times = [], []
    for _ in range(iters):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        cpu_times.append(time.process_time() - c0)  # all threads' CPU time (as step_ember)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(json.dumps({"framework": "pytorch " + torch.__version__, "model": model_name,
                      "device": str(device), "batch": batch, "iters": iters,
                      "amp": {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(amp, "none"),
                      "infer": infer, "median_step_ms": med * 1e3, "mean_step_ms": statistics.mean(times) * 1e3,
                      "median_step_cpu_ms": statistics.median(cpu_times) * 1e3,
                      "images_per_second": batch / statistics.mean(times),
                      "cudnn_benchmark": torch.backends.cudnn.benchmark}))


if __name__ == "__main__":
    main()
