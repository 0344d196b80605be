"""The live view of a running study: trials done of the total, each running trial's epochs, the
best so far, pruned and failed counts, elapsed and remaining time. On a terminal it redraws; off
one, or with ``--quiet``, it prints one plain line per finished trial."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tuner.after.summary import pct
from tuner.cli.views import KEY_PARAMS, fmt
from tuner.storage.records import view

if TYPE_CHECKING:
    from tuner.training.loop import EpochResult


class StudyProgress:
    """Listener and Optuna callback: shows trials done/total, the running trial's epochs, best
    so far, pruned and failed counts, elapsed and remaining time."""

    def __init__(self, console: Console, total_trials: int | None, *, live: bool, quiet: bool) -> None:
        self.console = console
        self.live = live and not quiet
        self.quiet = quiet
        self.best: float | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, transient=False,
        )
        self.trials_task = self.progress.add_task("trials", total=total_trials, info="")
        # One epoch bar per running trial (several with --jobs); bars are reused, not piled up.
        self.running: dict[int, Any] = {}
        self.free_bars: list[Any] = []

    def __enter__(self) -> StudyProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def _status(self) -> str:
        best = "—" if self.best is None else pct(self.best)
        return f"best {best} · pruned {self.counts['PRUNED']} · failed {self.counts['FAIL']}"

    # Listener ---------------------------------------------------------------------------------
    def trial_started(self, number: int, hp: dict[str, Any], reference: bool) -> None:
        label = f"trial {number}" + (" (reference)" if reference else "")
        if self.free_bars:
            bar = self.free_bars.pop()
            # reset, not update: the epoch bar's clock starts again with each trial
            self.progress.reset(bar, total=1, description=label, info="", visible=True)
        else:
            bar = self.progress.add_task(label, total=1, info="")
        self.running[number] = bar
        self.progress.update(self.trials_task, info=self._status())

    def epoch_done(self, number: int, epoch: int, epochs: int, result: EpochResult) -> None:
        info = f"loss {result.train_loss:.4f} · val {pct(result.val_accuracy)} · lr {result.lr:.2g}"
        if number in self.running:
            self.progress.update(self.running[number], total=epochs, completed=epoch, info=info)

    # Optuna callback ----------------------------------------------------------------------------
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.counts[trial.state.name] = self.counts.get(trial.state.name, 0) + 1
        bar = self.running.pop(trial.number, None)
        if bar is not None and self.running:  # others still train: hide this bar until reused
            self.progress.update(bar, visible=False)
        if bar is not None:
            self.free_bars.append(bar)
        if trial.state == TrialState.COMPLETE and (self.best is None or trial.value > self.best):
            self.best = trial.value
        self.progress.advance(self.trials_task)
        self.progress.update(self.trials_task, info=self._status())
        if not self.live:
            self.console.print(trial_line(trial), highlight=False)


def trial_line(trial: FrozenTrial) -> str:
    """``trial 3 pruned epochs=1 0.8s lr=0.01 ... — val 71.50% at epoch 1 below the pruner's bar``."""
    record = view(trial)
    head = f"trial {record.number} {record.state.lower()}"
    if record.reference:
        head += " (reference)"
    if record.value is not None:
        head += f" {pct(record.value)}"
    params = " ".join(f"{k}={fmt(record.hparams.get(k))}" for k in KEY_PARAMS if record.hparams.get(k) is not None)
    duration = f" {record.duration_s:.1f}s" if record.duration_s is not None else ""
    tail = f" — {record.reason}" if record.reason else ""
    return f"{head} epochs={record.epochs_run}{duration} {params}{tail}"
