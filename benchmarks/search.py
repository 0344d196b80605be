"""Benchmark 10: the search alone. Every searcher drives tuner's own training (the same loop, data,
split, space and per-trial seeds), so only the search differs.

For each pair and seed, each searcher runs until it has trained ``--budget`` epochs (trials x
epochs) and is measured by what can be counted:

- epochs to target: epochs trained until a trial first ends at or above the target (a trial's
  score is its validation accuracy where it ended, completed or stopped). The target is the
  reference trial's own validation accuracy plus one standard error of it: the reference never
  reaches it, and a trial that does is better by more than the noise of one measurement;
- best after the budget, and its validation standard error;
- pruning regret: every pruned trial is trained on to the full epochs in a side run (same
  settings, same seed: the run it would have been) and counted when it would have beaten the
  best trial of its study. Epochs saved: the epochs pruning spared, as a share of training every
  trial to the end.

Searchers (Optuna at its defaults, the reference queued first):

    tpe           TPE, no pruner
    tpe+median    TPE + median pruner (3 startup trials, no warm-up): tuner's search before this
    tpe+hyperband TPE + Hyperband (min resource 1 epoch)
    tuner         tuner's search now: TPE drawn around the reference at first (--prior
                  reference), median pruning that waits out warm-up and learning-rate drops
    tuner-noprior the same with --prior none

``--bad-reference``: the reference's learning rate divided by 1000 (for every searcher), to
show what a poor prior costs. ``--jobs 2``: tuner's and Optuna's searchers run two trials at a
time on one study, each drawn while the other trains, as ``--jobs 2``'s workers do. The workers
take turns (:class:`Lockstep`): an epoch is trained when it is the next to end on a clock that
counts epochs, so the study sees the trials start, report and end in the order two equally fast
workers would give them, every run the same; each trial keeps its own random generator, so it
trains exactly as it would alone. Peers from other libraries (``--searchers ... ray-asha
neps-priorband``: Ray Tune ASHA, NePS PriorBand) come from benchmarks/search_peers.py and need
``pip install -e '.[bench]'``.

    python benchmarks/search.py                                         # 3 pairs x 5 seeds
    python benchmarks/search.py --pairs mlp-mnist --seeds 1 --budget 24 --epochs 4   # the quick form
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from _common import DEFAULT_DATA

from tuner.contract import Architecture
from tuner.data import DataSettings, PreparedData, default_data_dir, load_data
from tuner.plugins import Pair, load_pair
from tuner.search import (
    KEEP_CHOICE,
    SPREAD,
    PriorSampler,
    SchedulePruner,
    auto_warmup,
    build_space,
    fixed_params_for,
    hyperparameters,
    standard_error,
)
from tuner.storage import records
from tuner.training import start_training, trial_seed
from tuner.trial import Objective, enqueue_reference

PAIRS = ("mlp-mnist", "lenet-mnist", "sigmoid-mlp-mnist")
PEERS = ("ray-asha", "neps-priorband")  # benchmarks/search_peers.py, when installed (tuner[bench])


@dataclasses.dataclass
class Setup:
    """One pair's data and space, shared by every searcher of one seed."""

    pair: Pair
    arch: Architecture
    data: PreparedData
    epochs: int
    seed: int
    warmup: int | None = None  # tuner's pruner: epochs before any pruning (None: tuner's default)
    spread: float = SPREAD  # tuner's prior: how far its draws go
    keep_choice: float = KEEP_CHOICE  # tuner's prior: how often a draw keeps the reference's choice


def _sampler(setup: Setup, prior: bool) -> optuna.samplers.BaseSampler:
    tpe = optuna.samplers.TPESampler(seed=setup.seed)
    if not prior:
        return tpe
    space = build_space(setup.arch)
    return PriorSampler(tpe, fixed_params_for(setup.arch.reference, space), setup.seed, len(setup.data.val_y),
                        spread=setup.spread, keep_choice=setup.keep_choice)


def _pruner(kind: str, epochs: int, warmup: int | None = None) -> optuna.pruners.BasePruner:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if kind == "schedule":
        return SchedulePruner(optuna.pruners.MedianPruner(n_startup_trials=3),
                              auto_warmup(epochs) if warmup is None else warmup)
    return optuna.pruners.NopPruner()


SEARCHERS: dict[str, Callable[[Setup], tuple[optuna.samplers.BaseSampler, optuna.pruners.BasePruner]]] = {
    "tpe": lambda s: (_sampler(s, False), _pruner("none", s.epochs)),
    "tpe+median": lambda s: (_sampler(s, False), _pruner("median", s.epochs)),
    "tpe+hyperband": lambda s: (_sampler(s, False), _pruner("hyperband", s.epochs)),
    "tuner": lambda s: (_sampler(s, True), _pruner("schedule", s.epochs, s.warmup)),
    "tuner-noprior": lambda s: (_sampler(s, False), _pruner("schedule", s.epochs, s.warmup)),
}


@dataclasses.dataclass
class Result:
    searcher: str
    ends: list[tuple[int, float]]  # (epochs trained so far, score) as each trial ended
    best: float
    trials: int
    pruned: list[optuna.trial.FrozenTrial]  # for the side runs of pruning regret (Optuna searchers)
    stopped_early: int  # trials that ended before their last epoch (pruned, or stopped by a peer)
    epochs: int  # trained in all
    full_epochs: int  # had every trial trained to the end
    seconds: float
    prior_trials: int
    best_completed: float
    val_examples: int
    reference: float = 0.0  # the reference trial's score (with --jobs it need not end first)
    regret: int | None = None  # pruned trials that would have beaten the study's best

    def epochs_to(self, target: float) -> int | None:
        return next((e for e, score in self.ends if score >= target), None)


class Lockstep:
    """``jobs`` workers (threads) on one study, one running at a time, in the order their epochs
    would end if every epoch took the same time: a worker's clock counts the epochs it has begun,
    and the turn goes to the lowest clock (the lower worker on a tie). A worker yields as each
    epoch begins (the trainer's ``on_batch(0, ...)``, heard as the listener's ``batch_done``); the
    global random generator, which dropout draws from, is kept per worker across the yield.
    ``trained`` counts every epoch ended, all workers together: the epochs at a trial's end."""

    def __init__(self, jobs: int) -> None:
        self.cond = threading.Condition()
        self.clock = [0] * jobs
        self.live = set(range(jobs))
        self.turn = 0
        self.trained = 0
        self.local = threading.local()

    def _pass(self) -> None:
        if self.live:
            self.turn = min(self.live, key=lambda w: (self.clock[w], w))
        self.cond.notify_all()

    def _wait(self, worker: int) -> None:
        while self.turn != worker:
            self.cond.wait()

    def enter(self, worker: int) -> None:
        self.local.worker = worker
        with self.cond:
            self._wait(worker)

    def leave(self) -> None:
        with self.cond:
            self.live.discard(self.local.worker)
            self._pass()

    # The listener's side (tuner.trial.events.Listener).
    def trial_started(self, number: int, hp: dict, reference: bool, where: str = "") -> None:  # type: ignore[type-arg]
        pass

    def batch_done(self, number: int, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        if done:
            return
        worker = self.local.worker
        with self.cond:
            state = torch.get_rng_state()
            self.clock[worker] += 1
            self._pass()
            self._wait(worker)
            torch.set_rng_state(state)

    def epoch_done(self, number: int, epoch: int, epochs: int, result: object) -> None:
        self.trained += 1


def _run_in_lockstep(study: optuna.Study, objective: Objective, budget: int, jobs: int
                     ) -> tuple[list[tuple[int, float]], list[optuna.trial.FrozenTrial]]:
    """``jobs`` workers ask, train and tell trials until ``budget`` epochs are trained (see
    :class:`Lockstep`); ``(epochs trained, score)`` of each trial that ended within it, in the
    order they ended, and those trials."""
    lockstep = Lockstep(jobs)
    objective.listener = lockstep
    ends: list[tuple[int, float]] = []
    numbers: list[int] = []

    def work(worker: int) -> None:
        lockstep.enter(worker)
        try:
            while lockstep.trained < budget:
                trial = study.ask()
                try:
                    study.tell(trial, objective(trial))
                except optuna.TrialPruned:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                except Exception:  # as study.optimize(catch=(Exception,)): a failed trial, the study goes on
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                history = trial.user_attrs.get(records.HISTORY, [])
                if history and lockstep.trained <= budget:
                    ends.append((lockstep.trained, history[-1]["val_accuracy"]))
                    numbers.append(trial.number)
        finally:
            lockstep.leave()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    return ends, [trials[n] for n in numbers]


def run_searcher(name: str, setup: Setup, budget: int, jobs: int = 1) -> Result:
    """One study of ``name`` until ``budget`` epochs are trained; trials ending after it do not
    count. ``jobs`` > 1: trials run that many at a time on one study, as ``--jobs`` workers share
    one, each drawn while the others run (:class:`Lockstep`); their epochs count as they end."""
    sampler, pruner = SEARCHERS[name](setup)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    space = build_space(setup.arch)
    enqueue_reference(study, setup.arch.reference, space)
    objective = Objective(arch=setup.arch, data=setup.data, space=space, epochs=setup.epochs, seed=setup.seed)
    trained, ends, started, seen = 0, [], time.perf_counter(), 0
    counted: list[optuna.trial.FrozenTrial] = []
    if jobs > 1:
        ends, counted = _run_in_lockstep(study, objective, budget, jobs)
    else:
        while trained < budget:
            study.optimize(objective, n_trials=1, catch=(Exception,))
            new = study.trials[seen:]
            seen += len(new)
            for trial in new:
                history = trial.user_attrs.get(records.HISTORY, [])
                trained += len(history)
                if history and trained <= budget:
                    ends.append((trained, history[-1]["val_accuracy"]))
                    counted.append(trial)
    done = [t for t in counted if t.state.name in ("COMPLETE", "PRUNED")]
    return Result(
        searcher=name, ends=ends, best=max((s for _, s in ends), default=0.0), trials=len(ends),
        pruned=[t for t in done if t.state.name == "PRUNED"],
        stopped_early=sum(t.state.name == "PRUNED" for t in done), epochs=sum(len(t.user_attrs[records.HISTORY])
                                                                         for t in done),
        full_epochs=setup.epochs * len(done), seconds=time.perf_counter() - started,
        prior_trials=sum(records.DRAWN in t.user_attrs for t in counted),
        best_completed=max((t.value for t in done if t.state.name == "COMPLETE"), default=0.0),
        val_examples=len(setup.data.val_y),
        reference=next(t.user_attrs[records.HISTORY][-1]["val_accuracy"] for t in counted
                       if t.user_attrs.get(records.REFERENCE)),
    )


def run_peer(name: str, setup: Setup, budget: int) -> Result:
    """A peer library's search (benchmarks/search_peers.py) on the same training."""
    import search_peers

    started = time.perf_counter()
    run = {"ray-asha": search_peers.run_ray_asha, "neps-priorband": search_peers.run_neps_priorband}[name]
    ends = run(setup, budget)
    trained = [e - (ends[i - 1][0] if i else 0) for i, (e, _) in enumerate(ends)]
    return Result(
        searcher=name, ends=ends, best=max((s for _, s in ends), default=0.0), trials=len(ends), pruned=[],
        stopped_early=sum(t < setup.epochs for t in trained), epochs=sum(trained),
        full_epochs=setup.epochs * len(ends), seconds=time.perf_counter() - started, prior_trials=0,
        best_completed=max((s for (_, s), t in zip(ends, trained, strict=True) if t == setup.epochs), default=0.0),
        val_examples=len(setup.data.val_y),
        reference=ends[0][1],  # one trial at a time, the reference first
    )


def pruning_regret(setup: Setup, result: Result) -> int:
    """Pruned trials trained on to the end (same settings and seed) that beat the study's best completed."""
    if not result.pruned:
        return 0
    beaten = 0
    for t in result.pruned:
        hp = hyperparameters(t.user_attrs[records.HPARAMS])
        trainer = start_training(setup.arch, setup.data, hp, trial_seed(setup.seed, t.number))
        for _ in range(setup.epochs):
            last = trainer.epoch()
        beaten += last.val_accuracy > result.best_completed
    return beaten


def setup_for(plugin: str, seed: int, args: argparse.Namespace) -> Setup:
    pair = load_pair(plugin)
    arch = pair.arch
    if args.bad_reference:
        arch = dataclasses.replace(arch, reference=dataclasses.replace(arch.reference, lr=arch.reference.lr / 1000))
    settings = DataSettings.capped(seed, args.max_train)
    if args.max_val:
        settings = dataclasses.replace(settings, max_val=args.max_val)
    data = load_data(pair, default_data_dir(str(args.data_dir)), torch.device("cpu"), settings)
    return Setup(pair, arch, data, args.epochs, seed, getattr(args, "pruner_warmup", None),
                 getattr(args, "prior_spread", SPREAD), getattr(args, "prior_keep", KEEP_CHOICE))


def _median(values: list[float | None]) -> str:
    """The median of epochs to target over seeds, a miss counting as the worst."""
    known = [v for v in values if v is not None]
    if len(known) < len(values) / 2:
        return "not reached"
    median = statistics.median([v if v is not None else math.inf for v in values])
    return f"{median:.0f}" if math.isfinite(median) else "not reached"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--searchers", nargs="+", default=list(SEARCHERS), choices=[*SEARCHERS, *PEERS])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per trial")
    parser.add_argument("--budget", type=int, default=96, help="epochs per study (16 full trials at 6)")
    parser.add_argument("--max-train", type=int, default=3000)
    parser.add_argument("--max-val", type=int, default=None,
                        help="validation images (default: the split's share of --max-train); more of them "
                             "make the standard error, and so the target's margin, smaller")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--bad-reference", action="store_true", help="the reference's lr / 1000")
    parser.add_argument("--no-regret", action="store_true", help="skip the side runs of pruned trials")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write each table's rows to FILE, by pair and searcher, columns by name")
    parser.add_argument("--jobs", type=int, default=1, help="trials at a time (tuner's and Optuna's searchers)")
    parser.add_argument("--pruner-warmup", type=int, default=None, metavar="E",
                        help="tuner's searchers: epochs before any pruning, as tuner optimize's flag "
                             "(default: tuner's, a sixth of --epochs to the nearest)")
    parser.add_argument("--prior-spread", type=float, default=SPREAD, metavar="S",
                        help="tuner's prior: a draw's standard deviation as a share of the range "
                             f"(default {SPREAD})")
    parser.add_argument("--prior-keep", type=float, default=KEEP_CHOICE, metavar="P",
                        help="tuner's prior: how often a draw keeps the reference's choice of a "
                             f"categorical setting, batch size and optimizer (default {KEEP_CHOICE})")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.max_val is not None and args.max_val < 1:
        parser.error("--max-val must be at least 1")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if args.pruner_warmup is not None and args.pruner_warmup < 0:
        parser.error("--pruner-warmup must be 0 or more")
    if args.prior_spread <= 0:
        parser.error("--prior-spread must be more than 0")
    if not 0 <= args.prior_keep <= 1:
        parser.error("--prior-keep must be between 0 and 1")
    prior_changed = (args.prior_spread, args.prior_keep) != (SPREAD, KEEP_CHOICE)
    print(f"search benchmark: {args.seeds} seeds, {args.epochs} epochs a trial, budget {args.budget} epochs, "
          f"{args.max_train} training images of real MNIST, CPU{', reference lr / 1000' if args.bad_reference else ''}"
          f"{f', {args.jobs} trials at a time' if args.jobs > 1 else ''}"
          f"{f', tuner pruning after {args.pruner_warmup} epochs' if args.pruner_warmup is not None else ''}"
          f"{f', prior spread {args.prior_spread} keep {args.prior_keep}' if prior_changed else ''}")
    failed, tables = False, {}
    for plugin in args.pairs:
        rows: dict[str, list[tuple[Result, float]]] = {name: [] for name in args.searchers}
        for seed in range(args.seeds):
            setup = setup_for(plugin, seed, args)
            results = {name: run_peer(name, setup, args.budget) if name in PEERS
                       else run_searcher(name, setup, args.budget, args.jobs) for name in args.searchers}
            reference = next(iter(results.values())).reference
            target = min(reference + standard_error(reference, len(setup.data.val_y)), 1.0)
            for name, r in results.items():
                if not args.no_regret and r.pruned:
                    r.regret = pruning_regret(setup, r)
                rows[name].append((r, target))
            print(f"  {plugin} seed {seed}: reference {100 * reference:.2f}%, target {100 * target:.2f}% "
                  f"({len(setup.data.val_y)} validation images)", flush=True)
        table: dict[str, dict[str, Any]] = {}
        failed |= _table(plugin, rows, args, table)
        tables[plugin] = table
    if args.json is not None:
        args.json.write_text(json.dumps(tables, indent=1))
    return 1 if failed else 0


def _table(plugin: str, rows: dict[str, list[tuple[Result, float]]], args: argparse.Namespace,
           table: dict[str, dict[str, Any]]) -> bool:
    """Print the pair's table (and keep each row in ``table``, by column name); whether a goal failed."""
    print(f"\n{plugin}: median over {args.seeds} seeds (spread: lowest..highest)")
    print(f"{'searcher':<15}{'epochs to target':>18}{'spread':>17}{'best after budget':>19}{'SE':>7}"
          f"{'trials':>7}{'prior':>6}{'pruned':>7}{'regret':>7}{'epochs saved':>13}{'s':>7}")
    medians: dict[str, float] = {}
    shown: dict[str, str] = {}  # the median as the table prints it
    for name, per_seed in rows.items():
        to = [r.epochs_to(target) for r, target in per_seed]
        reached = [v for v in to if v is not None]
        best = [r.best for r, _ in per_seed]
        med_best = statistics.median(best)
        pruned = sum(r.stopped_early for r, _ in per_seed)
        measured = [r for r, _ in per_seed if r.regret is not None]
        regret = "—" if not measured else \
            f"{sum(r.regret for r in measured)}/{sum(len(r.pruned) for r in measured)}"
        saved = 1 - sum(r.epochs for r, _ in per_seed) / max(1, sum(r.full_epochs for r, _ in per_seed))
        spread = f"{min(reached)}..{max(reached)}" if reached else "—"
        misses = len(to) - len(reached)
        se = statistics.median(standard_error(r.best, r.val_examples) for r, _ in per_seed)
        medians[name] = statistics.median([v if v is not None else math.inf for v in to])
        shown[name] = _median(to)
        table[name] = {"epochs_to_target": shown[name], "spread": spread, "misses": misses,
                       "best": med_best, "se": se, "trials": statistics.median(r.trials for r, _ in per_seed),
                       "prior_trials": statistics.median(r.prior_trials for r, _ in per_seed), "pruned": pruned,
                       "regret": regret, "epochs_saved": saved,
                       "seconds": statistics.median(r.seconds for r, _ in per_seed)}
        print(f"{name:<15}{shown[name]:>18}{spread + ('+' + str(misses) + ' miss' if misses else ''):>17}"
              f"{100 * med_best:>18.2f}%{100 * se:>6.2f}{statistics.median(r.trials for r, _ in per_seed):>7.0f}"
              f"{statistics.median(r.prior_trials for r, _ in per_seed):>6.0f}{pruned:>7}{regret:>7}"
              f"{100 * saved:>12.0f}%{statistics.median(r.seconds for r, _ in per_seed):>7.1f}")
    if "tuner" in medians and "tpe+median" in medians and math.isfinite(medians["tpe+median"]) \
            and math.isfinite(medians["tuner"]):
        print(f"tuner / tpe+median, median epochs to target: {medians['tuner'] / medians['tpe+median']:.2f}x "
              "(goal: at most 0.5x)")
    elif "tuner" in medians and "tpe+median" in medians:
        print("tuner / tpe+median, median epochs to target: no ratio, a median is a miss "
              f"(tuner {shown['tuner']}, tpe+median {shown['tpe+median']})")
    if "tuner" in medians and "tuner-noprior" in medians and math.isfinite(medians["tuner-noprior"]) \
            and math.isfinite(medians["tuner"]):
        print(f"tuner / tuner-noprior, median epochs to target: {medians['tuner'] / medians['tuner-noprior']:.2f}x")
    return False


if __name__ == "__main__":
    sys.exit(main())
