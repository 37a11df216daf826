#!/usr/bin/env python3
"""The cifar app's default run in PyTorch, for the side-by-side accuracy comparison of issue 16
(bench/results/*-cpu-cifar-accuracy.md): ResNet-20 (option A, the same model as
bench/step_pytorch.py and ember's resnet20), SGD lr 0.1 momentum 0.9 weight decay 5e-4,
cosine annealing over the epochs (stepped per epoch, eta_min 0), batch 128, test batch 1000,
random 32x32 crop of the image padded by 4 black pixels and a random horizontal flip,
per-channel CIFAR-10 mean/std normalization: what `build/apps/cifar` does with no flags.

Data: an image folder ROOT/{train,test}/<class>/<image> (what `scripts/get_data.sh cifar10`
unpacks from the JPEG copy), decoded with PIL (Debian python3-pil), classes in sorted order
as torchvision's ImageFolder. Writes one JSON line per epoch to OUT (train_loss, train_acc,
test_loss, test_acc, epoch_seconds) and prints it.

Usage: cifar_pytorch.py ROOT OUT [--epochs 30] [--threads N] [--seed 1]
                        [--limit-train N] [--limit-test N] [--checkpoint PATH]
--checkpoint: after every epoch, save the model, optimizer, schedule and random states to PATH
(atomically); when PATH exists at start, continue from it, appending to OUT, with the same
result as an uninterrupted run. --threads 0 keeps PyTorch's default, which is one thread on
the 2-core VM of bench/results (at::get_num_threads() = 1 there): pass --threads 2.
"""
import argparse, json, math, os, sys, time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_pytorch import ResNet20  # noqa: E402  (the same model as the step benchmark)

MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def load_folder(root, limit):
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    files = [sorted(os.listdir(os.path.join(root, c))) for c in classes]
    # Class-balanced round robin (as ember's image folder reader), so a limit takes every class.
    order = []
    for i in range(max(len(f) for f in files)):
        for c, f in enumerate(files):
            if i < len(f):
                order.append((c, os.path.join(root, classes[c], f[i])))
    if limit:
        order = order[:limit]
    x = np.empty((len(order), 32, 32, 3), dtype=np.uint8)
    y = np.empty(len(order), dtype=np.int64)
    for k, (c, path) in enumerate(order):
        with Image.open(path) as im:
            x[k] = np.asarray(im.convert("RGB"), dtype=np.uint8)
        y[k] = c
    return x, y


def normalize(u8):  # (N, 32, 32, 3) u8 -> (N, 3, 32, 32) f32, (x / 255 - mean) / std in f32
    return torch.from_numpy(((u8.astype(np.float32) / np.float32(255) - MEAN) / STD).transpose(0, 3, 1, 2).copy())


def augment(x, rng):  # x: (B, 3, 32, 32) normalized; pad 4 with black, random crop, flip
    black = torch.from_numpy((0.0 - MEAN) / STD).view(1, 3, 1, 1)
    b = x.shape[0]
    padded = black.expand(b, 3, 40, 40).clone()
    padded[:, :, 4:36, 4:36] = x
    dx, dy = rng.integers(0, 9, b), rng.integers(0, 9, b)
    flip = rng.integers(0, 2, b).astype(bool)
    out = torch.empty_like(x)
    for i in range(b):
        img = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = img.flip(2) if flip[i] else img
    return out


def evaluate(model, x, y):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            out = model(x[i:i + 1000])
            t = torch.from_numpy(y[i:i + 1000])
            loss += F.cross_entropy(out, t, reduction="sum").item()
            correct += (out.argmax(1) == t).sum().item()
    model.train()
    return loss / len(y), 100.0 * correct / len(y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: PyTorch's default)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit-train", type=int, default=0)
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--checkpoint", default="")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    xtr_u8, ytr = load_folder(os.path.join(a.root, "train"), a.limit_train)
    xte_u8, yte = load_folder(os.path.join(a.root, "test"), a.limit_test)
    xtr, xte = normalize(xtr_u8), normalize(xte_u8)
    model = ResNet20()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.epochs)
    start = 0
    if a.checkpoint and os.path.exists(a.checkpoint):
        ck = torch.load(a.checkpoint)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        rng.bit_generator.state = ck["numpy_rng"]
        torch.set_rng_state(ck["torch_rng"])
        start = ck["epoch"]
        print(f"resumed from {a.checkpoint} after epoch {start}", flush=True)
    with open(a.out, "a" if start else "w") as f:
        for epoch in range(start, a.epochs):
            t0 = time.time()
            perm = rng.permutation(len(ytr))
            seen, loss_sum, correct = 0, 0.0, 0
            for i in range(0, len(perm), 128):
                idx = perm[i:i + 128]
                xb, yb = augment(xtr[idx], rng), torch.from_numpy(ytr[idx])
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(idx)
                loss_sum += loss.item() * len(idx)
                correct += (out.argmax(1) == yb).sum().item()
            lr = opt.param_groups[0]["lr"]  # this epoch's, as ember's metrics.jsonl records it
            sched.step()
            test_loss, test_acc = evaluate(model, xte, yte)
            row = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_acc": 100.0 * correct / seen,
                   "test_loss": test_loss, "test_acc": test_acc, "lr": lr,
                   "epoch_seconds": time.time() - t0}
            print(json.dumps(row), flush=True)
            f.write(json.dumps(row) + "\n")
            f.flush()
            if a.checkpoint:
                tmp = a.checkpoint + ".tmp"
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                            "epoch": epoch + 1}, tmp)
                os.replace(tmp, a.checkpoint)
            if not math.isfinite(row["train_loss"]):
                sys.exit("training loss is not finite")


if __name__ == "__main__":
    main()
