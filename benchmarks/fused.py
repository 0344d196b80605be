"""Benchmark 11: K trials trained as one fused cohort against the same K trained one at a time.

Both contenders train the same K settings (seeded, the same epochs, the study's batch size) on
the same prepared data in this process; the table gives trials per hour of each, their ratio,
and how far each member's final validation accuracy lands from the same trial trained alone,
in validation standard errors (median and largest over the K). Dropout is off (0) for the
comparison, as issue 22 asks. A step fused matches the step alone to float rounding (1e-7,
tests/training/test_fused.py); over epochs at a high learning rate that rounding grows as it
would between two thread counts, so the largest gap belongs to the K's highest learning rate.

    python benchmarks/fused.py                                       # mlp-mnist, K = 2 4 8
    python benchmarks/fused.py --plugin lenet-mnist --fuse 4 --epochs 1
    python benchmarks/fused.py --device cuda --plugin net-cifar2 --fuse 8 16 32

``--study N``: instead, the same seeded study of N trials run by the real command twice, side by
side: ``tuner optimize --fuse 1`` and ``--fuse K`` for each K given (no pruning, so that both
train every trial to its last epoch); wall seconds of the whole command, trials per hour, and
the best validation accuracy each found.

    python benchmarks/fused.py --study 32 --fuse auto 8 16 --epochs 3 --max-train 6000 --repeats 3
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _common import study_parser

from tuner.contract import Hyperparameters
from tuner.data import DataSettings, load_data
from tuner.plugins import load_pair
from tuner.training import Cohort, start_training


def settings(k: int, batch_size: int, optimizer: str, dropout: bool) -> list[Hyperparameters]:
    """K settings that differ in what a cohort lets differ: learning rate and weight decay."""
    low = -3.5 if optimizer != "sgd" else -3.0  # log10 of the lowest lr; the K span two decades
    return [Hyperparameters(lr=10 ** (low + 2 * i / max(1, k - 1)), batch_size=batch_size, optimizer=optimizer,
                            weight_decay=1e-5 * i,
                            dropout=0.0 if dropout else None, plateau_patience=1)
            for i in range(k)]


def timed(fn) -> tuple[float, list[float]]:
    started = time.perf_counter()
    accuracies = fn()
    return time.perf_counter() - started, accuracies


TUNER = shutil.which("tuner", path=str(Path(sys.executable).parent)) or "tuner"


def study(args, k: str, cwd: Path) -> tuple[float, float, int, float, str, float | None]:  # type: ignore[no-untyped-def]
    """``tuner optimize --fuse k`` run as a user runs it: wall seconds of the command, seconds from
    the first trial's start to the last one's end, trials, best validation accuracy, the cohort
    size it trained with (auto's choice), and the seconds from the first trial's start until a
    trial beat the reference (None: none did)."""
    import optuna

    command = [TUNER, "optimize", "--plugin", args.plugin, "--trials", str(args.study), "--epochs",
               str(args.epochs), "--seed", str(args.seed), "--max-train", str(args.max_train or 6000),
               "--data-dir", str(args.data_dir), "--pruner", "none", "--fuse", str(k), "--device", args.device,
               "--study", f"fuse-{k}", "--quiet"]
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "TUNER_OFFLINE": "1"})
    wall = time.perf_counter() - started
    trials = optuna.load_study(study_name=f"fuse-{k}", storage=f"sqlite:///{cwd / 'studies' / f'fuse-{k}.db'}").trials
    start = min(t.datetime_start for t in trials)
    span = (max(t.datetime_complete for t in trials) - start).total_seconds()
    reference = next(t.value for t in trials if t.user_attrs.get("reference"))
    beat = [(t.datetime_complete - start).total_seconds() for t in trials
            if t.value is not None and t.value > reference]
    said = next((line for line in proc.stdout.splitlines() if line.startswith("--fuse")), "")
    chosen = "1" if k == "1" or "one trial at a time" in said else said.split(": ")[1].split()[0] if said else k
    return wall, span, len(trials), max(t.value for t in trials if t.value is not None), chosen, min(beat, default=None)


def studies(args) -> int:  # type: ignore[no-untyped-def]
    """Each contender's study ``--repeats`` times, the contenders interleaved (a slow spell of the
    machine falls on all of them); medians, with the spread of the ratio over the repeats."""
    print(f"{args.plugin}: {args.study} trials of {args.epochs} epochs, --max-train {args.max_train or 6000}, "
          f"no pruning, seed {args.seed}, device {args.device}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"median of {args.repeats} runs each, interleaved")
    print("wall: the whole command (start-up, data, the probe, the test pass); trials: first trial's start to "
          "last trial's end; beat ref: from the first trial's start until a trial beat the reference")
    contenders = ["1", *args.fuse]
    runs: dict[str, list[tuple[float, float, int, float, str, float | None]]] = {k: [] for k in contenders}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for k in contenders:
                cwd = Path(folder) / f"{k}-{repeat}"
                cwd.mkdir()
                runs[k].append(study(args, k, cwd))
    print(f"{'--fuse':>7}{'K':>6}{'wall s':>9}{'trials s':>10}{'trials':>8}{'trials/h':>10}{'vs --fuse 1':>13}"
          f"{'trials only (range)':>24}{'best val':>10}{'beat ref s':>12}")
    base, table = runs["1"], {}
    for k in contenders:
        mine = runs[k]
        wall, span = statistics.median(r[0] for r in mine), statistics.median(r[1] for r in mine)
        n, best, chosen = mine[0][2], mine[0][3], "/".join(sorted({r[4] for r in mine}))
        beats = [r[5] for r in mine if r[5] is not None]
        only = sorted(b[1] / r[1] for b, r in zip(base, mine, strict=True))  # each repeat against its own --fuse 1
        rate = n / wall * 3600
        table[k] = {"k": chosen, "wall_s": wall, "trials_s": span, "trials": n, "trials_per_h": rate,
                    "vs_fuse_1": statistics.median(b[0] for b in base) / wall, "trials_only": statistics.median(only),
                    "best": best, "beat_reference_s": statistics.median(beats) if beats else None}
        print(f"{k:>7}{chosen:>6}{wall:>9.1f}{span:>10.1f}{n:>8}{rate:>10,.0f}"
              f"{statistics.median(b[0] for b in base) / wall:>12.2f}×"
              f"{f'{statistics.median(only):.2f}× ({only[0]:.2f}–{only[-1]:.2f})':>24}{100 * best:>9.2f}%"
              f"{'—' if not beats else f'{statistics.median(beats):.1f}':>12}")
    if args.json is not None:
        args.json.write_text(json.dumps(table, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="mlp-mnist", trials=0, epochs=2)
    parser.add_argument("--fuse", nargs="+", default=["2", "4", "8"], help="cohort sizes (--study: also auto)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3, help="--study: runs of each contender")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="--study: also write each contender's row to FILE, columns by name")
    parser.add_argument("--study", type=int, default=None, metavar="N",
                        help="compare whole `tuner optimize` studies of N trials instead")
    args = parser.parse_args(argv)
    if args.study:
        return studies(args)
    max_train = args.max_train or 6000
    pair = load_pair(args.plugin)
    device = torch.device(args.device)
    data = load_data(pair, args.data_dir, device, DataSettings.capped(args.seed, max_train))
    n_val = len(data.val_y)
    print(f"{args.plugin}: {len(data.train_y):,} train / {n_val:,} validation images, {args.epochs} epochs, "
          f"batch {args.batch_size}, {args.optimizer}, device {device}, {os.cpu_count()} CPU cores, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'K':>4}{'alone s':>10}{'fused s':>10}{'trials/h alone':>16}{'trials/h fused':>16}{'ratio':>8}"
          f"{'|Δval| median/max (SE)':>24}")

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for k in map(int, args.fuse):
        hps = settings(k, args.batch_size, args.optimizer, pair.arch.has_dropout)
        seeds = [1000 + i for i in range(k)]

        def alone(hps=hps, seeds=seeds) -> list[float]:
            accuracies = []
            for hp, seed in zip(hps, seeds, strict=True):
                trainer = start_training(pair.arch, data, hp, seed)
                for _ in range(args.epochs):
                    last = trainer.epoch()
                accuracies.append(last.val_accuracy)
            sync()
            return accuracies

        def fused(hps=hps, seeds=seeds) -> list[float]:
            cohort = Cohort(pair.arch, data, hps, seeds)
            for _ in range(args.epochs):
                results = cohort.epoch()
            sync()
            return [r.val_accuracy for r in results]

        fused()  # warm-up: first calls of vmap's batching rules
        t_alone, a_alone = timed(alone)
        t_fused, a_fused = timed(fused)
        p = sum(a_alone) / k
        se = math.sqrt(max(p * (1 - p), 1e-12) / n_val)
        gaps = sorted(abs(a - b) / se for a, b in zip(a_alone, a_fused, strict=True))
        print(f"{k:>4}{t_alone:>10.2f}{t_fused:>10.2f}{k / t_alone * 3600:>16,.0f}{k / t_fused * 3600:>16,.0f}"
              f"{t_alone / t_fused:>7.2f}×{gaps[len(gaps) // 2]:>17.2f} / {gaps[-1]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
