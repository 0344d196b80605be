"""After-the-study commands on a stored study of 1,000 trials: `best`, `best --json`,
`trials --json` and `report`, each a whole `tuner` process timed from start to exit.

The study is a real `tuner optimize` study of lenet-digits (its provenance, reference trial and
kept weights) grown to ``--trials`` with trials drawn from its own search space: 40% complete,
55% pruned after 1-9 epochs, 5% failed, each with a 10-epoch history, recipe and process
record as `tuner optimize` writes them, and the importance `tuner optimize` stores when a run
ends (timed once more with it stale, as after trials another machine added). Goals (issue 14):
best < 2 s, trials --json < 2 s, report < 30 s on the 2-core development machine.

    python benchmarks/big_study.py              # 1,000 trials, 3 repeats
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tuner.after import importance as insight
from tuner.storage import IMPORTANCE as IMPORTANCE_ATTR

TUNER = shutil.which("tuner", path=str(Path(sys.executable).parent)) or "tuner"
GOALS = {"best": 2.0, "best --json": 2.0, "trials --json": 2.0, "report": 30.0}


def grow(db: Path, n: int, seed: int = 0) -> None:
    """Add trials to the study in ``db`` until it holds ``n``."""
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{db}")
    template = next(t for t in study.trials if t.state == TrialState.COMPLETE and len(t.distributions) > 4)
    dists = template.distributions
    rng = random.Random(seed)
    start = datetime.now() - timedelta(hours=2)
    trials = []
    for number in range(len(study.trials), n):
        params = {}
        for name, dist in dists.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                params[name] = rng.choice(dist.choices)
            elif dist.log:
                params[name] = dist.low * (dist.high / dist.low) ** rng.random()
            else:
                params[name] = rng.uniform(dist.low, dist.high)
            if isinstance(dist, optuna.distributions.IntDistribution):
                params[name] = round(params[name])
        roll = rng.random()
        state = TrialState.COMPLETE if roll < 0.4 else TrialState.PRUNED if roll < 0.95 else TrialState.FAIL
        epochs = 10 if state == TrialState.COMPLETE else rng.randint(1, 9)
        acc = [min(0.99, 0.5 + 0.05 * e + rng.uniform(-0.1, 0.1)) for e in range(epochs)]
        history = [{"epoch": e + 1, "train_loss": 1 / (e + 1), "val_loss": 1 / (e + 2), "val_accuracy": a,
                    "lr": params.get("lr", 0.01), "seconds": 0.1} for e, a in enumerate(acc)]
        attrs = dict(template.user_attrs, history=history, hparams={**template.user_attrs["hparams"], **params})
        attrs.pop("reference", None)
        attrs.pop("weights", None)
        if state == TrialState.PRUNED:
            attrs["prune_reason"] = f"val {100 * acc[-1]:.2f}% at epoch {epochs} below the pruner's bar"
        if state == TrialState.FAIL:
            attrs["fail_reason"] = "training loss became nan in epoch 1"
        began = start + timedelta(seconds=3 * number)
        trials.append(optuna.trial.create_trial(
            state=state, value=acc[-1] if state == TrialState.COMPLETE else None, params=params,
            distributions=dists, user_attrs=attrs, intermediate_values=dict(enumerate(acc[:epochs])),
        ))
        trials[-1].datetime_start, trials[-1].datetime_complete = began, began + timedelta(seconds=epochs * 0.3)
    study.add_trials(trials)


def timed(args: list[str], cwd: Path, repeats: int) -> list[float]:
    env = {**os.environ, "TUNER_OFFLINE": "1"}
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run([TUNER, *args], cwd=cwd, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise SystemExit(f"tuner {' '.join(args)} failed:\n{proc.stderr}")
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    cwd = Path(tempfile.mkdtemp(prefix="tuner-big-"))
    subprocess.run([TUNER, "optimize", "--plugin", "lenet-digits", "--trials", "6", "--epochs", "2", "--quiet"],
                   cwd=cwd, check=True, capture_output=True, env={**os.environ, "TUNER_OFFLINE": "1"})
    db = cwd / "studies" / "lenet-digits.db"
    started = time.perf_counter()
    grow(db, args.trials)
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{db}")
    insight.remember(study)  # as the end of a `tuner optimize` run leaves it
    print(f"study of {args.trials:,} trials stored in {time.perf_counter() - started:.1f} s ({db})")
    commands = {"best": ["best", str(db)], "best --json": ["best", str(db), "--json"],
                "trials --json": ["trials", str(db), "--json"], "report": ["report", str(db), "-o", "r.html"]}
    print(f"{'command':<16}{'median s':>10}{'min s':>8}{'max s':>8}{'goal s':>8}  met")
    results = {}
    for name, command in commands.items():
        t = timed(command, cwd, args.repeats)
        results[name] = statistics.median(t)
        print(f"{name:<16}{statistics.median(t):>10.2f}{min(t):>8.2f}{max(t):>8.2f}{GOALS[name]:>8.0f}  "
              f"{'yes' if statistics.median(t) < GOALS[name] else 'NO'}")
    study.set_user_attr(IMPORTANCE_ATTR, {"complete": -1})  # trials finished since: recomputed
    t = timed(commands["best --json"], cwd, args.repeats)
    print(f"{'best, importance recomputed':<16} {statistics.median(t):.2f} s median (trials completed since the "
          "last run ended, e.g. by another machine's run)")
    summary = json.loads(subprocess.run([TUNER, "best", str(db), "--json"], cwd=cwd, capture_output=True,
                                        text=True).stdout)
    imp = summary["importance"]
    print(f"importance: {imp['evaluator']} over {imp['trials']} complete trials")
    shutil.rmtree(cwd, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
