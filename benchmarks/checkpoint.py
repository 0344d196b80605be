"""What saving a running trial's state costs next to the epoch it follows (goal: under 2%).

For each pair, on its real data, with its reference settings: one epoch trained, then the trial's
state saved through the study's artifact store exactly as an epoch's end saves it
(``tuner.trial.checkpoint.save``: model, optimizer, scheduler, generators; written
atomically into ``studies/<name>.artifacts/``), best of ``--repeats``. Side by side it prints the
epoch, the save, their ratio when every epoch saves (``--checkpoint-every 0``), and at the
default ``--checkpoint-every 30`` (one save per 30 s of training at most)::

    python benchmarks/checkpoint.py
    python benchmarks/checkpoint.py --pairs alexnet-mnist --max-train 1000 --max-val 500
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
from _common import DEFAULT_DATA

from tuner.planning import reference_trainer
from tuner.plugins import load_pair
from tuner.storage import BESIDE_DB, StudyArtifacts
from tuner.study import OptimizeOptions
from tuner.trial import checkpoint

PAIRS = ["mlp-mnist", "lenet-mnist", "cnnnet-mnist", "sigmoid-mlp-mnist"]


def measure(pair_name: str, args: argparse.Namespace, folder: Path) -> dict[str, float]:
    trainer = reference_trainer(load_pair(pair_name), args.data_dir, torch.device(args.device),
                                max_train=args.max_train, max_val=args.max_val)
    db = folder / f"{pair_name}.db"
    study = optuna.create_study(study_name=pair_name, storage=f"sqlite:///{db}")
    artifacts = StudyArtifacts(study, BESIDE_DB, db)
    trial = study.ask()
    epoch_s = save_s = float("inf")
    for repeat in range(args.repeats):
        started = time.perf_counter()
        trainer.epoch()
        epoch_s = min(epoch_s, time.perf_counter() - started)
        started = time.perf_counter()
        checkpoint.save(trial, trainer, repeat + 1, artifacts)
        save_s = min(save_s, time.perf_counter() - started)
    size = sum(p.stat().st_size for p in artifacts.folder.glob("checkpoint-*"))
    return {"epoch_s": epoch_s, "save_s": save_s, "mb": size / 1e6, "train": len(trainer.data.train_y)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=PAIRS)
    parser.add_argument("--max-train", type=int, default=None, help="training images per epoch (default: all)")
    parser.add_argument("--max-val", type=int, default=None, help="validation images per epoch (default: all)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    every = next(f.default for f in dataclasses.fields(OptimizeOptions) if f.name == "checkpoint_every")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, best of {args.repeats}")
    print(f"{'pair':<20}{'train':>8}{'epoch s':>10}{'save s':>9}{'MB':>8}{'save/epoch':>12}{f'at {every:.0f} s':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.pairs:
            r = measure(pair, args, Path(tmp))
            per_epoch = r["save_s"] / r["epoch_s"]
            at_default = r["save_s"] / max(r["epoch_s"], every)
            print(f"{pair:<20}{r['train']:>8,}{r['epoch_s']:>10.2f}{r['save_s']:>9.3f}{r['mb']:>8.1f}"
                  f"{per_epoch:>11.2%}{at_default:>10.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
