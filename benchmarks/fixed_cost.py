"""A whole 1-trial, 2-epoch `tuner optimize` process next to seed 002's script, and where each
one's time goes: what a run pays besides training.

    python benchmarks/fixed_cost.py                 # mlp-mnist, 3 repeats each, alternating

Both train seed 002's MLP for 2 epochs on real MNIST on the CPU: tuner on 54,000 examples
(6,000 held out for validation) plus one test pass at the end; the script on 60,000 with a test
pass after each epoch, the way the post does. Each process is timed from launch to exit; the
phase tables come from the same runs (the script's own clock; tuner's steps called in a child
process in the order `tuner optimize` calls them). The MNIST files are extracted once for the
script beforehand, as torchvision leaves them after its first download.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEFAULT_DATA

STARTED = time.time()  # the child's clock: after the interpreter and the standard library's imports

HERE = Path(__file__).resolve().parent
TUNER = shutil.which("tuner", path=str(Path(sys.executable).parent)) or "tuner"
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def tuner_phases(data_dir: str, db: str, plugin: str, epochs: int) -> dict[str, float]:
    """`tuner optimize`'s steps, timed: runs in a child process (``--child``), with the
    collector paused for start-up and the heap frozen at the end as the command does."""
    started = time.perf_counter()
    from tuner import cli  # noqa: F401  (what the command imports before it starts)
    from tuner.runtime import collector_paused

    with collector_paused():
        import optuna  # noqa: F401

        from tuner.after import best_summary, remember
        from tuner.data import default_data_dir, load_splits
        from tuner.execution import run_study
        from tuner.plugins import load_pair
        from tuner.study import OptimizeOptions, measure_test_accuracy, prepare_study

        phases = {"imports": time.perf_counter() - started}
        mark = time.perf_counter()
        pair = load_pair(plugin)
        load_splits(pair.dataset_name, pair.dataset, default_data_dir(data_dir), pair.dataset_dist)
        phases["data files -> tensors"] = time.perf_counter() - mark
        mark = time.perf_counter()
        options = OptimizeOptions(plugin=plugin, trials=1, epochs=epochs, db=db, data_dir=data_dir, device="cpu")
        prepared = prepare_study(options)
        phases["contract batch, split, study created"] = time.perf_counter() - mark
    mark = time.perf_counter()
    run_study(prepared, 1, None)
    trial = prepared.study.trials[0]
    training = sum(row["seconds"] for row in trial.user_attrs["history"])
    phases["trial: training epochs"] = training
    phases["trial: the rest (first optimizer, bookkeeping)"] = time.perf_counter() - mark - training
    mark = time.perf_counter()
    measure_test_accuracy(prepared)
    remember(prepared.study)
    best_summary(prepared.study, prepared.location.db_path)
    phases["test evaluation, summary"] = time.perf_counter() - mark
    return phases


def import_floor(env: dict[str, str]) -> dict[str, float]:
    """Seconds to import torch, then torch._dynamo (which a torch optimizer's first step
    imports), in a fresh interpreter with the collector off as tuner has it at start-up."""
    probe = ("import gc, json, time\ngc.disable()\nt = time.perf_counter()\nimport torch\n"
             "a = time.perf_counter()\nimport torch._dynamo\nb = time.perf_counter()\n"
             "print(json.dumps({'torch': a - t, 'torch._dynamo': b - a}))\n")
    runs = [json.loads(subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                                      check=True).stdout) for _ in range(3)]
    return {k: min(r[k] for r in runs) for k in runs[0]}


def whole(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started, proc.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin", default="mlp-mnist")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", nargs=2, metavar=("DATA", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        phases = tuner_phases(args.child[0], args.child[1], args.plugin, args.epochs)
        print(json.dumps({"started": STARTED, **phases, "ended": time.time()}), flush=True)
        gc.freeze()  # as tuner.cli.console does
        return 0
    work = Path(tempfile.mkdtemp(prefix="tuner-fixed-"))
    raw = work / "seed-data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES:
        with gzip.open(args.data_dir / "MNIST" / "raw" / f"{name}.gz") as src, (raw / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    env = {**os.environ, "TUNER_OFFLINE": "1", "TUNER_DATA_DIR": str(args.data_dir)}
    times: dict[str, list[float]] = {"tuner optimize": [], "seed 002 script": []}
    seed_phases: list[dict[str, float]] = []
    for i in range(args.repeats):
        t, _ = whole([TUNER, "optimize", "--plugin", args.plugin, "--trials", "1", "--epochs", str(args.epochs),
                      "--db", str(work / f"w{i}.db"), "--quiet"], env)
        times["tuner optimize"].append(t)
        t, err = whole([sys.executable, str(HERE / "peers" / "seed002_mlp.py"), str(work / "seed-data"),
                        "--epochs", str(args.epochs), "--phases"], env)
        times["seed 002 script"].append(t)
        seed_phases.append(json.loads(err.strip().splitlines()[-1]))
    launched = time.time()
    child = subprocess.run([sys.executable, str(HERE / "fixed_cost.py"), "--plugin", args.plugin, "--epochs",
                            str(args.epochs), "--child", str(args.data_dir), str(work / "phases2.db")],
                           env=env, capture_output=True, text=True, check=True)
    ended = time.time()
    report = json.loads(child.stdout)
    start, end = report.pop("started") - launched, ended - report.pop("ended")
    phases = {"interpreter start, the script's own imports": start, **report,
              "exit (heap frozen, storages closed)": end}
    print(f"{args.plugin}, {args.epochs} epochs, 1 trial, CPU, {args.repeats} runs each (alternating)")
    print(f"{'whole process':<20}{'median s':>10}{'min s':>8}{'max s':>8}")
    for name, ts in times.items():
        print(f"{name:<20}{statistics.median(ts):>10.2f}{min(ts):>8.2f}{max(ts):>8.2f}")
    ratio = statistics.median(times["seed 002 script"]) / statistics.median(times["tuner optimize"])
    print(f"tuner optimize is {ratio:.2f}x faster than seed 002's script (goal 3.5x)")
    print("\ntuner optimize, by phase (one child run):")
    for name, seconds in phases.items():
        print(f"  {name:<48}{seconds:>6.2f} s")
    floor = import_floor(env)
    least = floor["torch"] + floor["torch._dynamo"] + phases["trial: training epochs"]
    print(f"  the floor: importing torch {floor['torch']:.2f} s and torch._dynamo {floor['torch._dynamo']:.2f} s "
          f"(collector off), training {phases['trial: training epochs']:.2f} s: {least:.2f} s, "
          f"{statistics.median(times['seed 002 script']) / least:.2f}x if nothing else took any time")
    print("seed 002's script, by phase (median of its runs):")
    for name in seed_phases[0]:
        print(f"  {name:<48}{statistics.median(p[name] for p in seed_phases):>6.2f} s")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
