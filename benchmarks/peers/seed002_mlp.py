"""Seed 002's MLP script, as the post runs it, for 2 epochs: a whole process to time.

torchvision's MNIST (the extracted official files under DATA/MNIST/raw, as torchvision reads
them), ToTensor + Normalize(0.5, 0.5) per sample through a DataLoader, the 784-300-100-10 MLP
with BatchNorm1d, SGD lr 0.01 momentum 0.9, batch 64, StepLR(5, 0.5), the loss read every
step, test accuracy after each epoch. Written from the post's description; not its code.

    python benchmarks/peers/seed002_mlp.py DATA [--epochs 2]
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402  (after the clock: imports are a phase of the run)
import json  # noqa: E402
import sys  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

IMPORTED = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--phases", action="store_true", help="print the seconds of each phase as JSON on stderr")
    args = parser.parse_args(argv)
    phases = {"imports": IMPORTED - STARTED, "training": 0.0, "test evaluation": 0.0}
    mark = time.perf_counter()
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train = datasets.MNIST(args.data, train=True, download=False, transform=transform)
    test = datasets.MNIST(args.data, train=False, download=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=64)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.BatchNorm1d(300), nn.ReLU(),
                          nn.Linear(300, 100), nn.BatchNorm1d(100), nn.ReLU(), nn.Linear(100, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    phases["data and model"] = time.perf_counter() - mark
    for epoch in range(args.epochs):
        mark = time.perf_counter()
        model.train()
        total = 0.0
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        scheduler.step()
        phases["training"] += time.perf_counter() - mark
        mark = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        phases["test evaluation"] += time.perf_counter() - mark
        print(f"epoch {epoch + 1}: loss {total / len(train_loader):.4f}, test accuracy {correct / len(test):.4f}")
    if args.phases:
        print(json.dumps(phases), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
