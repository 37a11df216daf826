#!/usr/bin/env python3
"""The side-by-side CIFAR-10 accuracy table of issue 16: one row per epoch from ember's
metrics.jsonl (build/apps/cifar --out DIR) and bench/cifar_pytorch.py's output, as Markdown.

Usage: cifar_curves.py EMBER_METRICS_JSONL PYTORCH_JSONL
"""
import json
import sys


def rows(path):
    return {r["epoch"]: r for r in (json.loads(l) for l in open(path) if l.strip())}


def main():
    em, pt = rows(sys.argv[1]), rows(sys.argv[2])
    print("| epoch | lr | ember train loss | ember train acc | ember test acc | PyTorch train loss "
          "| PyTorch train acc | PyTorch test acc | ember s | PyTorch s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for e in sorted(set(em) | set(pt)):
        a, b = em.get(e), pt.get(e)
        cell = lambda r, k, f: (f % r[k]) if r else "-"  # noqa: E731
        lr = a["lr"] if a else b["lr"]
        print(f"| {e} | {lr:.5f} | {cell(a, 'train_loss', '%.4f')} | {cell(a, 'train_acc', '%.2f%%')} "
              f"| {cell(a, 'test_acc', '%.2f%%')} | {cell(b, 'train_loss', '%.4f')} | {cell(b, 'train_acc', '%.2f%%')} "
              f"| {cell(b, 'test_acc', '%.2f%%')} | {cell(a, 'epoch_seconds', '%.0f')} | {cell(b, 'epoch_seconds', '%.0f')} |")
    for name, r in (("ember", em), ("PyTorch", pt)):
        if r:
            best = max(r.values(), key=lambda x: x["test_acc"])
            last = r[max(r)]
            print(f"\n{name}: best {best['test_acc']:.2f}% (epoch {best['epoch']}), final {last['test_acc']:.2f}% "
                  f"(epoch {last['epoch']}), final train accuracy {last['train_acc']:.2f}%, "
                  f"{sum(x['epoch_seconds'] for x in r.values()) / 60:.1f} min of epochs")


if __name__ == "__main__":
    main()
