"""Benchmark 6: does `--compile` pay for itself across trials?

For each pair, three trials' worth of training with torch.compile against the same trials in
eager mode, side by side in one process: the first compiled trial pays the compile time; the
next ones build new models (another learning rate, another dropout) and reuse the compiled
graphs where the shapes match. Reports epoch times, the compile cost and the break-even point.

    python benchmarks/compile.py                                       # lenet-mnist, mlp-mnist on CPU
    python benchmarks/compile.py --pairs alexnet-mnist --device cuda --max-train 20000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_DATA

from tuner.data import load_splits, prepare
from tuner.plugins.registry import registry
from tuner.search import hyperparameters
from tuner.training import Trainer

TRIALS = [{"lr": 0.01}, {"lr": 0.003, "dropout": 0.2}, {"lr": 0.03, "dropout": 0.4}]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_times(arch, data, compiled: bool, epochs: int, device: torch.device) -> list[list[float]]:
    """Seconds per epoch, for each trial of TRIALS."""
    out = []
    for values in TRIALS:
        hp = hyperparameters(values, base=arch.reference)
        torch.manual_seed(0)
        trainer = Trainer(arch.build(data.shape, hp), hp, data, seed=0, compile=compiled)
        times = []
        for _ in range(epochs):
            sync(device)
            t = time.perf_counter()
            trainer.epoch()
            sync(device)
            times.append(time.perf_counter() - t)
        out.append(times)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["lenet-mnist", "mlp-mnist"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=10000)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    reg = registry()
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"{args.max_train} training images, {len(TRIALS)} trials × {args.epochs} epochs")
    for pair in args.pairs:
        arch_name, data_name = reg.split_pair(pair)
        arch, dataset = reg.architecture(arch_name), reg.dataset(data_name)
        splits = load_splits(data_name, dataset, args.data_dir)
        data = prepare(splits, dataset, arch, device=device, max_train=args.max_train)
        torch._dynamo.reset()
        eager = epoch_times(arch, data, False, args.epochs, device)
        compiled = epoch_times(arch, data, True, args.epochs, device)
        print(f"\n{pair}   epoch seconds, trial by trial (first epoch of each trial first)")
        print(f"{'trial':>6}{'eager':>24}{'compiled':>24}")
        for i, (e, c) in enumerate(zip(eager, compiled, strict=True)):
            print(f"{i:>6}{' '.join(f'{x:7.2f}' for x in e):>24}{' '.join(f'{x:7.2f}' for x in c):>24}")
        steady_e = min(min(t[1:] or t) for t in eager)
        steady_c = min(min(t[1:] or t) for t in compiled)
        cost = compiled[0][0] - steady_c
        later = max(t[0] - steady_c for t in compiled[1:])
        print(f"steady epoch: eager {steady_e:.3f} s, compiled {steady_c:.3f} s, compiled/eager speed "
              f"{steady_e / steady_c:.2f}×; compile cost {cost:.1f} s in trial 0, ≤{later:.1f} s in later trials")
        if steady_c < steady_e:
            print(f"pays for itself after {cost / (steady_e - steady_c):.0f} epochs")
        else:
            print("never pays for itself here: compiled epochs are not faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
