"""Benchmark 5: several trials at once (`--jobs N`) against one at a time, in trials per hour.

Each contender is the real command, `tuner optimize`, timed from start to exit (worker start-up,
data loading and the final test measurement included). So that every trial does the same work,
the batch size is fixed and nothing is pruned; the random sampler draws the rest.

    python benchmarks/parallel.py                                   # mlp-digits, 40 trials × 5 epochs
    python benchmarks/parallel.py --plugin lenet-mnist --max-train 6000 --trials 12 --epochs 2
    python benchmarks/parallel.py --device cuda --jobs 1 2 4 8      # on a GPU
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from _common import study_parser

TUNER = str(Path(sys.executable).with_name("tuner"))


def run(jobs: int, args) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    cmd = [TUNER, "optimize", "--plugin", args.plugin, "--trials", str(args.trials), "--epochs", str(args.epochs),
           "--jobs", str(jobs), "--device", args.device, "--sampler", "random", "--pruner", "none",
           "--space", f"batch_size={args.batch_size}", "--seed", str(args.seed), "--db", str(folder / "s.db"),
           "--data-dir", str(args.data_dir), "--quiet"]
    if args.max_train:
        cmd += ["--max-train", str(args.max_train)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "TUNER_OFFLINE": "1"})
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=args.plugin, storage=f"sqlite:///{folder / 's.db'}")
    best = study.best_value
    shutil.rmtree(folder)
    return {"wall": wall, "per_hour": args.trials / wall * 3600, "best": best}


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="mlp-digits", trials=40, epochs=5)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    print(f"{args.plugin}: {args.trials} trials × {args.epochs} epochs, batch {args.batch_size}, no pruning, "
          f"device {args.device}, {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(f"{'jobs':>6}{'wall s':>10}{'trials/hour':>14}{'vs 1 job':>10}{'best val':>10}")
    base = None
    for jobs in args.jobs:
        r = run(jobs, args)
        base = base or r["per_hour"]
        print(f"{jobs:>6}{r['wall']:>10.1f}{r['per_hour']:>14,.0f}{r['per_hour'] / base:>9.2f}×"
              f"{100 * r['best']:>9.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
