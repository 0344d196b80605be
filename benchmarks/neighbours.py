"""The reference and its neighbours: each setting moved one step, the rest kept, trained alone.

Benchmark 10 (benchmarks/search.py) counts epochs until a search beats the reference by one
validation standard error. When no searcher gets there soon, the question is whether the
reference is a local optimum at the benchmark's fidelity: this trains it and every neighbour
(learning rate x3 and /3, the next batch sizes of the space, weight decay 1e-4 and 1e-2, the other
optimizers at the same rate, a ReduceLROnPlateau schedule, dropout +-0.2 where the model has it)
on the benchmark's data and split, each with the reference's trial seed, and prints which of them
reach the target. Counted, not timed.

    python benchmarks/neighbours.py --pair sigmoid-mlp-mnist --max-val 3000 --seeds 3
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from search import DEFAULT_DATA, Setup, setup_for

from tuner.contract import OPTIMIZERS, Choice, Hyperparameters, Param
from tuner.search import build_space, standard_error
from tuner.training import start_training, trial_seed


def neighbours(reference: Hyperparameters, space: Mapping[str, Param], has_dropout: bool) -> dict[str, dict[str, Any]]:
    """Each one-setting move from ``reference``, named as it prints."""
    moves: dict[str, dict[str, Any]] = {"lr x3": {"lr": reference.lr * 3}, "lr /3": {"lr": reference.lr / 3}}
    sizes = space.get("batch_size")
    if isinstance(sizes, Choice):
        options = sorted(sizes.options)
        below = [b for b in options if b < reference.batch_size]
        above = [b for b in options if b > reference.batch_size]
        moves.update({f"batch {b}": {"batch_size": b} for b in [*below[-1:], *above[:1]]})
    moves.update({f"wd {wd:g}": {"weight_decay": wd} for wd in (1e-4, 1e-2) if wd != reference.weight_decay})
    moves.update({o: {"optimizer": o} for o in OPTIMIZERS if o != reference.optimizer})
    if reference.scheduler != "plateau":
        moves["plateau"] = {"scheduler": "plateau"}
    if has_dropout and reference.dropout is not None:
        moves.update({f"dropout {p:.1f}": {"dropout": p} for p in (reference.dropout - 0.2, reference.dropout + 0.2)
                      if 0 <= p < 1})
    return moves


def _accuracies(setup: Setup, hp: Hyperparameters, epochs: int) -> list[float]:
    """Validation accuracy after each epoch of ``hp`` trained with the reference's trial seed."""
    trainer = start_training(setup.arch, setup.data, hp, trial_seed(setup.seed, 0))
    return [trainer.epoch().val_accuracy for _ in range(epochs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", default="sigmoid-mlp-mnist")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-train", type=int, default=3000)
    parser.add_argument("--max-val", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    args.bad_reference = False
    wins: dict[str, int] = {}
    for seed in range(args.seeds):
        setup = setup_for(args.pair, seed, args)
        reference = dataclasses.replace(setup.arch.reference, epochs=args.epochs)
        base = _accuracies(setup, reference, args.epochs)
        n_val = len(setup.data.val_y)
        target = base[-1] + standard_error(base[-1], n_val)
        print(f"{args.pair} seed {seed}: reference {100 * base[-1]:.2f}% (by epoch: "
              f"{' '.join(f'{100 * a:.1f}' for a in base)}), target {100 * target:.2f}% ({n_val} validation images)")
        for name, change in neighbours(reference, build_space(setup.arch), setup.arch.has_dropout).items():
            accuracies = _accuracies(setup, dataclasses.replace(reference, **change), args.epochs)
            won = accuracies[-1] >= target
            wins[name] = wins.get(name, 0) + won
            print(f"  {name:<12}{100 * accuracies[-1]:>7.2f}%{100 * (accuracies[-1] - base[-1]):>+7.2f}"
                  f"{'  reaches the target' if won else ''}", flush=True)
    reached = {name: n for name, n in wins.items() if n}
    print(f"neighbours that reach the target: {sum(reached.values())} of {len(wins) * args.seeds} "
          f"({', '.join(f'{name} in {n} of {args.seeds} seeds' for name, n in reached.items()) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
