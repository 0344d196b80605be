"""Benchmark 3: the same seeded study with the default pruner (median) and with none.

Reports epochs actually trained, wall time and best validation accuracy for each, and the
ratios. Both studies sample the same parameters for the trials they both run (same sampler
seed); pruning changes only how long each trial trains, and what TPE learns from it.

    python benchmarks/pruning.py                                   # lenet-digits, 30 trials × 10 epochs
    python benchmarks/pruning.py --plugin mlp-mnist --max-train 20000 --trials 20 --epochs 5
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import optuna
from _common import study_parser

from tuner.execution import run_study
from tuner.study import OptimizeOptions, prepare_study


def run(pruner: str, args) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    options = OptimizeOptions(plugin=args.plugin, db=str(folder / "s.db"), trials=args.trials, epochs=args.epochs,
                              seed=args.seed, device="cpu", pruner=pruner, max_train=args.max_train,
                              data_dir=str(args.data_dir))
    prepared = prepare_study(options)
    started = time.perf_counter()
    run_study(prepared, args.trials, None)
    wall = time.perf_counter() - started
    trials = prepared.study.trials
    return {
        "epochs": sum(len(t.user_attrs.get("history", [])) for t in trials),
        "wall": wall,
        "best": prepared.study.best_value,
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
    }


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="lenet-digits", trials=30, epochs=10)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"{args.plugin}: {args.trials} trials × {args.epochs} epochs, seed {args.seed}, CPU")
    results = {name: run(name, args) for name in ("median", "none")}
    print(f"{'pruner':<8}{'epochs':>8}{'pruned':>8}{'wall s':>9}{'best val':>10}")
    for name, r in results.items():
        print(f"{name:<8}{r['epochs']:>8}{r['pruned']:>8}{r['wall']:>9.1f}{100 * r['best']:>9.2f}%")
    m, n = results["median"], results["none"]
    print(f"median/none: epochs {m['epochs'] / n['epochs']:.0%}, wall {m['wall'] / n['wall']:.0%}, "
          f"best {100 * (m['best'] - n['best']):+.2f} pts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
