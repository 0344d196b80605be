"""How close the cost said before trial 0 is to what an epoch then takes.

For each pair, on its real data with its reference settings: the estimate ``tuner optimize``
prints (``tuner.planning.timing.measure`` on a throwaway model: a few steps timed, scaled to the
batch size and to an epoch), what measuring it took, then real epochs of a fresh model; side by
side with their ratio (1.00: exact)::

    python benchmarks/estimate.py
    python benchmarks/estimate.py --pairs alexnet-mnist --max-train 1000 --max-val 500 --epochs 1
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_DATA

from tuner.planning import measure, reference_trainer
from tuner.plugins import load_pair
from tuner.training import start_training

PAIRS = ["mlp-mnist", "lenet-mnist", "cnnnet-mnist", "lenet-digits", "mlp-digits"]


def compare(pair_name: str, args: argparse.Namespace) -> dict[str, float]:
    pair = load_pair(pair_name)
    trainer = reference_trainer(pair, args.data_dir, torch.device(args.device), max_train=args.max_train,
                                max_val=args.max_val)
    data = trainer.data
    started = time.perf_counter()
    timing = measure(trainer)  # trains it: the real epochs below start from a fresh model
    measuring_s = time.perf_counter() - started
    trainer = start_training(pair.arch, data, trainer.hp, seed=0)
    real = []
    for _ in range(args.epochs):
        started = time.perf_counter()
        trainer.epoch()
        real.append(time.perf_counter() - started)
    return {"estimate_s": timing.epoch_s(len(data.train_y), len(data.val_y)), "real_s": sorted(real)[len(real) // 2],
            "measuring_s": measuring_s, "timed_at": timing.measured_at, "batch": timing.batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--max-train", type=int, default=None, help="training images per epoch (default: all)")
    parser.add_argument("--max-val", type=int, default=None, help="validation images per epoch (default: all)")
    parser.add_argument("--epochs", type=int, default=3, help="real epochs; the median is compared")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"median of {args.epochs} real epochs")
    print(f"{'pair':<16}{'batch':>7}{'timed at':>10}{'measuring s':>13}{'estimate s':>12}{'real s':>9}"
          f"{'estimate/real':>15}")
    for pair in args.pairs:
        r = compare(pair, args)
        print(f"{pair:<16}{r['batch']:>7}{r['timed_at']:>10}{r['measuring_s']:>13.2f}{r['estimate_s']:>12.2f}"
              f"{r['real_s']:>9.2f}{r['estimate_s'] / r['real_s']:>14.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
