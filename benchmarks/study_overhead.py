"""Benchmark 2: what a trial costs outside training, with 10, 100 and 1,000 trials already stored.

For each size, a fresh SQLite study is filled with that many finished trials (realistic rows:
parameters, per-epoch history, intermediate values), then `tuner` runs --trials more of
--plugin through the real objective. Time inside Trainer.epoch (train + validate) is training;
everything else in the trial (sampling, storage, model build, pruning, bookkeeping) is overhead.
Also counts the SQL writes each trial makes, per epoch.

    python benchmarks/study_overhead.py                      # mlp-mnist, 3 epochs, 3 trials per size

Then Python's full garbage collections in a study of short real trials, side by side: with the
collector as a plain script has it, and as tuner runs trials (its start-up heap frozen,
tuner.execution.run.LongLivedHeap). Then TPE's sampling time by storage, and a trial's bookkeeping
alone (training a no-op), again with and without the frozen heap.

Then the cost of keeping a trial's weights as a study artifact (sha256, atomic write through
Optuna's artifact store, the record on the trial) next to the plain `torch.save` to a path
that tuner did before, with 1,000 trials stored; and 4 `tuner optimize` processes x 50 trials
started together on one SQLite study, counting lock errors.

    python benchmarks/study_overhead.py --parts store workers   # only those two
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna
import torch
from _common import study_parser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from sqlalchemy import event

from tuner.contract import Choice, FloatRange, IntRange
from tuner.execution import run as run_module
from tuner.execution import run_study
from tuner.plugins.registry import registry
from tuner.search import build_space, make_sampler, sample
from tuner.storage import locate, storage_for
from tuner.study import OptimizeOptions, prepare_study
from tuner.training import loop as engine
from tuner.trial import objective as objective_module

PARTS = ("trials", "gc", "sampling", "bookkeeping", "store", "workers")


def fake_trials(space, n: int, epochs: int) -> list[optuna.trial.FrozenTrial]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        params, dists = {}, {}
        for name, p in space.items():
            if isinstance(p, Choice):
                dists[name] = CategoricalDistribution(list(p.options))
                params[name] = rng.choice(p.options)
            elif isinstance(p, IntRange):
                dists[name] = IntDistribution(p.low, p.high)
                params[name] = rng.randint(p.low, p.high)
            elif isinstance(p, FloatRange):
                dists[name] = FloatDistribution(p.low, p.high, log=p.log)
                params[name] = p.low * (p.high / p.low) ** rng.random() if p.log else rng.uniform(p.low, p.high)
        accs = sorted(rng.uniform(0.1, 0.99) for _ in range(epochs))
        history = [{"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_loss": 1.0 / (e + 1), "val_accuracy": a,
                    "lr": params.get("lr", 1e-3), "seconds": 1.0} for e, a in enumerate(accs)]
        out.append(optuna.trial.create_trial(
            params=params, distributions=dists, value=accs[-1],
            intermediate_values=dict(enumerate(accs)),
            user_attrs={"hparams": params, "history": history},
        ))
    return out


@contextlib.contextmanager
def heap(freeze: bool):
    """tuner's LongLivedHeap() entered before the clock starts (its first collection is a cost
    per study, reported apart), or none at all: Python's collector as a plain script has it."""
    original = run_module.LongLivedHeap
    try:
        if freeze:
            with original() as entered:
                run_module.LongLivedHeap = lambda: contextlib.nullcontext(entered)
                yield
        else:
            run_module.LongLivedHeap = lambda: contextlib.nullcontext(lambda study, trial: None)
            yield
    finally:
        run_module.LongLivedHeap = original


@contextlib.contextmanager
def full_collections():
    """Counts Python's full (generation 2) garbage collections and their seconds."""
    seen = {"count": 0, "s": 0.0, "started": 0.0, "longest": 0.0}

    def callback(phase, info):
        if info["generation"] != 2:
            return
        if phase == "start":
            seen["started"] = time.perf_counter()
        else:
            took = time.perf_counter() - seen["started"]
            seen["count"] += 1
            seen["s"] += took
            seen["longest"] = max(seen["longest"], took)

    gc.callbacks.append(callback)
    try:
        yield seen
    finally:
        gc.callbacks.remove(callback)


def measure(n_stored: int, args) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    options = OptimizeOptions(plugin=args.plugin, db=str(folder / "s.db"), epochs=args.epochs,
                              max_train=args.max_train, device="cpu", data_dir=str(args.data_dir), seed=0,
                              pruner=args.pruner)
    prepared = prepare_study(options)
    prepared.study.add_trials(fake_trials(prepared.objective.space, n_stored, args.epochs))
    # Replace the enqueued reference (trial 0) by a sampled trial: measure the steady state.
    prepared.study.tell(prepared.study.ask(), state=optuna.trial.TrialState.FAIL)

    training = 0.0
    original = engine.Trainer.epoch

    def timed_epoch(self):
        nonlocal training
        t = time.perf_counter()
        try:
            return original(self)
        finally:
            training += time.perf_counter() - t

    writes = {"trial": 0, "epoch": 0}
    in_epochs = False
    original_train = objective_module.Objective._train

    def train_and_flag(self, trial, trainer, history):
        nonlocal in_epochs
        in_epochs = True
        try:
            return original_train(self, trial, trainer, history)
        finally:
            in_epochs = False

    def count(conn, cursor, statement, *a):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes["epoch" if in_epochs else "trial"] += 1

    engine_ = prepared.study._storage._backend.engine
    event.listen(engine_, "before_cursor_execute", count)
    engine.Trainer.epoch = timed_epoch
    objective_module.Objective._train = train_and_flag
    try:
        with heap(freeze=True), full_collections() as collections:
            started = time.perf_counter()
            run_study(prepared, args.trials, None)
            total = time.perf_counter() - started
    finally:
        engine.Trainer.epoch = original
        objective_module.Objective._train = original_train
        event.remove(engine_, "before_cursor_execute", count)
    epochs_run = sum(len(t.user_attrs.get("history", [])) for t in prepared.study.trials[-args.trials:])
    return {"trial_s": total / args.trials, "overhead_s": (total - training) / args.trials,
            "share": (total - training) / total, "writes_per_epoch": writes["epoch"] / max(epochs_run, 1),
            "writes_per_trial": writes["trial"] / args.trials,
            "epochs": epochs_run / args.trials, "gc_count": collections["count"] / args.trials,
            "gc_ms": 1000 * collections["s"] / args.trials}


def collections_in_study(n_stored: int, args, freeze: bool) -> dict[str, float]:
    """Full garbage collections while ``args.gc_trials`` short real trials run, with tuner's frozen
    start-up heap or with Python's collector as a plain script has it. In a fresh process, as
    `tuner optimize` runs: how often a full collection comes depends on the heap's history."""
    child = [sys.executable, __file__, "--gc-child", str(n_stored), "frozen" if freeze else "plain",
             "--plugin", args.plugin, "--data-dir", str(args.data_dir), "--gc-trials", str(args.gc_trials),
             "--gc-max-train", str(args.gc_max_train), "--gc-epochs", str(args.gc_epochs)]
    done = subprocess.run(child, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _collections_in_this_process(n_stored: int, args, freeze: bool) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    options = OptimizeOptions(plugin=args.plugin, db=str(folder / "s.db"), epochs=args.gc_epochs,
                              max_train=args.gc_max_train, device="cpu", data_dir=str(args.data_dir), seed=0,
                              pruner="none")
    prepared = prepare_study(options)
    prepared.study.add_trials(fake_trials(prepared.objective.space, n_stored, args.gc_epochs))
    with heap(freeze), full_collections() as seen:
        started = time.perf_counter()
        run_study(prepared, args.gc_trials, None)
        total = time.perf_counter() - started
    return {"trial_s": total / args.gc_trials, "count": seen["count"],
            "ms_per_trial": 1000 * seen["s"] / args.gc_trials, "longest_ms": 1000 * seen["longest"]}


def sampling_ms(space, n_stored: int, epochs: int, storage: str | None, snapshot: bool = False) -> float:
    """Milliseconds to ask TPE for one trial's parameters with ``n_stored`` trials in ``storage``
    (tuner's sampler, which reads the study once per trial, with ``snapshot``)."""
    if storage is not None:  # the same SQLite set-up as tuner's own studies (write-ahead log)
        storage = storage_for(locate("s", db=storage), create=True)
    sampler = make_sampler("tpe", 0) if snapshot else optuna.samplers.TPESampler(seed=0)
    study = optuna.create_study(storage=storage, direction="maximize", sampler=sampler)
    study.add_trials(fake_trials(space, n_stored, epochs))
    study.get_trials(deepcopy=False)  # as a run does when it opens the study: trials read once, cached
    started = time.perf_counter()
    for _ in range(5):
        trial = study.ask()
        sample(trial, space)
        study.tell(trial, 0.5)
    return (time.perf_counter() - started) / 5 * 1000


def bookkeeping_ms(n_stored: int, args, freeze: bool, trials: int = 30) -> tuple[float, float, float]:
    """Milliseconds per trial with training replaced by a no-op: everything tuner does around
    the epochs (heartbeat included), with the start-up heap frozen as tuner runs trials or
    not. Also full garbage collections per trial and their milliseconds per trial."""
    folder = Path(tempfile.mkdtemp())
    options = OptimizeOptions(plugin=args.plugin, db=str(folder / "s.db"), epochs=args.epochs, max_train=2000,
                              device="cpu", data_dir=str(args.data_dir), seed=0, pruner=args.pruner)
    prepared = prepare_study(options)
    prepared.study.add_trials(fake_trials(prepared.objective.space, n_stored, args.epochs))
    prepared.study.tell(prepared.study.ask(), state=optuna.trial.TrialState.FAIL)
    rng = random.Random(0)
    original = engine.Trainer.epoch
    engine.Trainer.epoch = lambda self: engine.EpochResult(0.5, 0.5, rng.uniform(0.1, 0.9), 0.01)
    try:
        with heap(freeze):
            run_study(prepared, 2, None)  # warm
            with full_collections() as collections:
                started = time.perf_counter()
                run_study(prepared, trials, None)
                ms = (time.perf_counter() - started) / trials * 1000
        return ms, collections["count"] / trials, 1000 * collections["s"] / trials
    finally:
        engine.Trainer.epoch = original


def store_ms(n_stored: int, args, repeats: int = 20) -> dict[str, float]:
    """Milliseconds to keep one trial's weights: through the study's artifact store (what tuner
    does), and a plain ``torch.save`` to a path (what it did before), side by side, same model."""
    folder = Path(tempfile.mkdtemp())
    options = OptimizeOptions(plugin=args.plugin, db=str(folder / "s.db"), epochs=1, max_train=2000,
                              device="cpu", data_dir=str(args.data_dir), seed=0)
    prepared = prepare_study(options)
    prepared.study.add_trials(fake_trials(prepared.objective.space, n_stored, 1))
    hp = prepared.objective.hyperparameters_for(prepared.study.ask())[0]
    model = prepared.objective.arch.build(prepared.data.shape, hp)
    plain_folder = folder / "plain"
    plain_folder.mkdir()
    times: dict[str, list[float]] = {"store": [], "plain": [], "remove": []}
    for i in range(repeats):
        trial = prepared.study.ask()
        started = time.perf_counter()
        prepared.artifacts.save(trial, model)
        times["store"].append(time.perf_counter() - started)
        started = time.perf_counter()
        torch.save(model.state_dict(), plain_folder / f"trial-{i}.pt")
        times["plain"].append(time.perf_counter() - started)
        prepared.study.tell(trial, 0.5)
        frozen = prepared.study._storage.get_trial(trial._trial_id)
        started = time.perf_counter()
        prepared.artifacts.remove(frozen)
        times["remove"].append(time.perf_counter() - started)
    size = sum(p.stat().st_size for p in plain_folder.iterdir()) / repeats
    return {k: 1000 * sorted(v)[len(v) // 2] for k, v in times.items()} | {"mb": size / 1e6}


def workers_run(args, processes: int = 4, trials: int = 50, threads: int | None = None) -> dict[str, object]:
    """``processes`` tuner optimize commands started together on one new SQLite study, each
    --trials ``trials``, --keep 5 (weights written and removed often): exit codes, trials
    stored, lock errors in their output or in the trials' fail reasons, weights left. With
    ``threads``, each process's torch uses that many (OMP_NUM_THREADS), else all the cores."""
    folder = Path(tempfile.mkdtemp())
    tuner = Path(sys.executable).with_name("tuner")
    command = [str(tuner), "optimize", "--plugin", "mlp-digits", "--trials", str(trials), "--epochs", "1",
               "--keep", "5", "--quiet", "--db", str(folder / "s.db")]
    env = {**os.environ, "TUNER_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    started = time.perf_counter()
    procs = [subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{folder / 's.db'}")
    trials_ = study.trials
    locked = sum("locked" in out + err for out, err in outputs)
    locked += sum("locked" in str(t.user_attrs.get("fail_reason", "")) for t in trials_)
    states = {}
    for t in trials_:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return {"codes": [p.returncode for p in procs], "trials": len(trials_), "states": states, "locked": locked,
            "numbers_without_gap": [t.number for t in trials_] == list(range(len(trials_))),
            "weights_files": len(list((folder / "s.artifacts").glob("*"))), "wall_s": wall,
            "errors": [err.strip().splitlines()[-1] for p, (_, err) in zip(procs, outputs, strict=True)
                       if p.returncode and err.strip()]}


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="mlp-mnist", trials=3, epochs=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--pruner", default="median", help="none: every trial trains all its epochs")
    parser.add_argument("--gc-trials", type=int, default=30, help="trials of the garbage-collection table")
    parser.add_argument("--gc-max-train", type=int, default=5000)
    parser.add_argument("--gc-epochs", type=int, default=2)
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--gc-child", nargs=2, metavar=("STORED", "HEAP"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # The set-up below adds trials with ask/tell, which Optuna warns about under a heartbeat.
    warnings.filterwarnings("ignore", message="Heartbeat of storage")
    if args.gc_child:
        stored, heap_kind = args.gc_child
        print(json.dumps(_collections_in_this_process(int(stored), args, freeze=heap_kind == "frozen")))
        return 0
    tables = {"trials": trials_table, "gc": gc_table, "sampling": sampling_table,
              "bookkeeping": bookkeeping_table, "store": store_table, "workers": workers_table}
    for part in PARTS:
        if part in args.parts:
            tables[part](args)
    return 0


def trials_table(args) -> None:
    print(f"{args.plugin}, {args.epochs} epochs per trial, pruner {args.pruner}, {args.trials} trials measured "
          "per size, CPU")
    print(f"{'stored':>8}{'trial s':>9}{'overhead s':>12}{'overhead %':>12}{'full GCs':>10}"
          f"{'GC ms':>7}{'epochs':>8}{'writes/epoch':>14}{'other writes/trial':>20}")
    measure(args.sizes[0], args)  # warm-up: first-call costs of torch and SQLAlchemy stay out
    for n in args.sizes:
        r = measure(n, args)  # full GCs and GC ms are per trial
        print(f"{n:>8}{r['trial_s']:>9.2f}{r['overhead_s']:>12.3f}{100 * r['share']:>11.2f}%"
              f"{r['gc_count']:>10.1f}{r['gc_ms']:>7.0f}{r['epochs']:>8.1f}"
              f"{r['writes_per_epoch']:>14.1f}{r['writes_per_trial']:>20.1f}")


def gc_table(args) -> None:
    print(f"Python's full garbage collections in {args.gc_trials} short real trials ({args.gc_max_train} images, "
          f"{args.gc_epochs} epochs), each study in a fresh process, side by side:")
    print(f"{'stored':>8}{'heap':>8}{'trial s':>9}{'full GCs':>10}{'GC ms/trial':>13}{'longest GC ms':>15}")
    for n in args.sizes:
        for freeze in (False, True):
            r = collections_in_study(n, args, freeze)
            print(f"{n:>8}{'frozen' if freeze else 'plain':>8}{r['trial_s']:>9.2f}{r['count']:>10}"
                  f"{r['ms_per_trial']:>13.1f}{r['longest_ms']:>15.0f}")
    gc.collect()
    started = time.perf_counter()
    with run_module.LongLivedHeap():
        once = time.perf_counter() - started
    print(f"Once per study, before its first trial: one full collection and freeze, {1000 * once:.0f} ms "
          "(and once more after the first trial: counted in the frozen rows above)")


def sampling_table(args) -> None:
    space = build_space(registry().architecture(args.plugin.rsplit("-", 1)[0]))
    print("TPE sampling of one trial's parameters (ask + sample + tell), ms:")
    print(f"{'stored':>8}{'in memory':>11}{'SQLite':>9}{'SQLite, one read (tuner)':>26}")
    for n in args.sizes:
        ms = [sampling_ms(space, n, args.epochs, None),
              sampling_ms(space, n, args.epochs, str(Path(tempfile.mkdtemp()) / "s.db")),
              sampling_ms(space, n, args.epochs, str(Path(tempfile.mkdtemp()) / "s.db"), snapshot=True)]
        print(f"{n:>8}{ms[0]:>11.1f}{ms[1]:>9.1f}{ms[2]:>26.1f}")


def bookkeeping_table(args) -> None:
    print("A whole trial with training replaced by a no-op (tuner's bookkeeping alone), ms per trial, "
          "30 trials, best of 3, side by side:")
    print(f"{'stored':>8}{'plain heap':>12}{'full GCs':>10}{'GC ms':>7}{'frozen (tuner)':>16}{'full GCs':>10}"
          f"{'GC ms':>7}{'ratio':>8}")
    for n in args.sizes:
        runs = {freeze: [] for freeze in (False, True)}
        for _ in range(3):
            for freeze in (False, True):
                runs[freeze].append(bookkeeping_ms(n, args, freeze))
        plain, frozen = min(runs[False]), min(runs[True])
        print(f"{n:>8}{plain[0]:>12.1f}{plain[1]:>10.2f}{plain[2]:>7.1f}{frozen[0]:>16.1f}{frozen[1]:>10.2f}"
              f"{frozen[2]:>7.1f}{plain[0] / frozen[0]:>7.2f}×")


def store_table(args) -> None:
    print(f"Keeping one trial's weights ({args.plugin}), ms, median of 20, side by side:")
    print(f"{'stored':>8}{'MB':>7}{'torch.save to a path (before)':>31}{'artifact store (tuner)':>24}"
          f"{'ratio':>8}{'removal':>9}{'% of a 2 s trial':>18}")
    for n in args.sizes:
        r = store_ms(n, args)
        print(f"{n:>8}{r['mb']:>7.2f}{r['plain']:>31.1f}{r['store']:>24.1f}{r['store'] / r['plain']:>7.2f}×"
              f"{r['remove']:>9.1f}{(r['store'] - r['plain']) / 20:>17.2f}%")


def workers_table(args) -> None:
    cores = os.cpu_count() or 1
    print(f"4 tuner optimize processes started together on one SQLite study (mlp-digits, 1 epoch, --keep 5), "
          f"{cores} cores:")
    runs = [(f"OMP_NUM_THREADS={max(1, cores // 4)}", workers_run(args, trials=50, threads=max(1, cores // 4))),
            ("all cores each (default)", workers_run(args, trials=10))]
    for label, r in runs:
        per = r["wall_s"] / r["trials"]
        print(f"  {label}: {r['trials']} trials {r['states']}, exit codes {r['codes']}, numbered without a gap: "
              f"{r['numbers_without_gap']}, lock errors: {r['locked']}, weights files left: {r['weights_files']}, "
              f"{r['wall_s']:.0f} s, {per:.2f} s per trial")
        for error in r["errors"]:
            print(f"    {error}")
    shared, each = (r["wall_s"] / r["trials"] for _, r in runs)
    print(f"  per trial, all cores each / threads shared: {each / shared:.1f}×")


if __name__ == "__main__":
    sys.exit(main())
