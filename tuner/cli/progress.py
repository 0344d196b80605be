"""The live view of a running study: trials done of the total and the study's time left; each
running trial's epoch, batch, images/s and time left; the best so far, pruned and failed counts.
On a terminal it redraws; off one, or with ``--quiet``, it prints one plain line per finished trial."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tuner.after.summary import pct
from tuner.cli.views import KEY_PARAMS, fmt
from tuner.planning.timing import duration
from tuner.storage.records import view

if TYPE_CHECKING:
    from tuner.training.loop import EpochResult


class StudyProgress:
    """Listener and Optuna callback: shows trials done/total with the study's time left, each
    running trial's epoch and batch, images/s and time left, best so far, pruned and failed."""

    def __init__(self, console: Console, total_trials: int | None, *, live: bool, quiet: bool, jobs: int = 1) -> None:
        self.console = console
        self.live = live and not quiet
        self.quiet = quiet
        self.total = total_trials
        self.jobs = jobs
        self.best: float | None = None
        self.counts = {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0}
        self.started = time.perf_counter()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("{task.fields[left]}"),
            console=console, transient=False,
        )
        self.trials_task = self.progress.add_task("trials", total=total_trials, info="", left="",
                                                  count=self._count(0))
        # One bar per running trial (several with --jobs); bars are reused, not piled up.
        self.running: dict[int, _Running] = {}
        self.free_bars: list[Any] = []
        self.durations: list[float] = []  # seconds of each trial finished in this run
        self.trial_guess: float | None = None  # seconds a trial takes, measured before any ended

    def __enter__(self) -> StudyProgress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def _count(self, done: int) -> str:
        return f"{done}/{self.total}" if self.total is not None else f"{done}"

    def _status(self) -> str:
        best = "—" if self.best is None else pct(self.best)
        return f"best {best} · pruned {self.counts['PRUNED']} · failed {self.counts['FAIL']}"

    def estimated(self, seconds_per_trial: float) -> None:
        """The measured cost of a trial at the reference's settings (tuner.planning.estimate)."""
        self.trial_guess = seconds_per_trial
        self._update_study()

    def study_left(self) -> float | None:
        """Seconds until the study ends: the running trials' time left, then the trials not yet
        started at the mean of those ended (pruned ones included), ``jobs`` at a time."""
        if self.total is None:
            return None
        finished = sum(self.counts.values())
        waiting = max(0, self.total - finished - len(self.running))
        per_trial = (sum(self.durations) / len(self.durations) if self.durations
                     else next((r.projected() for r in self.running.values() if r.projected() is not None),
                               self.trial_guess))
        lefts = [r.left() for r in self.running.values()]
        if any(left is None for left in lefts):  # a trial that has not trained yet: a whole one
            if per_trial is None:
                return None
            lefts = [per_trial if left is None else left for left in lefts]
        if waiting and per_trial is None:
            return None
        return max([0.0, *lefts]) + (waiting * per_trial / self.jobs if waiting else 0.0)  # type: ignore[operator]

    def _update_study(self) -> None:
        left = self.study_left()
        self.progress.update(self.trials_task, info=self._status(),
                             left="" if left is None else f"~{duration(left)} left")

    # Listener ---------------------------------------------------------------------------------
    def trial_started(self, number: int, hp: dict[str, Any], reference: bool, where: str = "") -> None:
        label = f"trial {number}" + (" (reference)" if reference else "") + (f" on {where}" if where else "")
        fields = {"description": label, "info": "building the model", "count": "", "left": ""}
        if self.free_bars:
            bar = self.free_bars.pop()
            # reset, not update: the bar's clock starts again with each trial
            self.progress.reset(bar, total=None, visible=True, **fields)
        else:
            bar = self.progress.add_task(total=None, **fields)
        self.running[number] = _Running(bar)
        self._update_study()

    def batch_done(self, number: int, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        running = self.running.get(number)
        if running is None:
            return
        running.at(epoch, epochs, done, batches, images)
        left = running.left()
        if left is None and self.trial_guess is not None:  # no batch done yet: the measured cost
            left = max(0.0, self.trial_guess - (time.perf_counter() - running.opened))
        info = f"batch {done}/{batches}"
        if running.rate is not None:
            info += f" · {running.rate:,.0f} img/s"
        if running.last:
            info += f" · {running.last}"
        self.progress.update(running.bar, total=epochs * batches, completed=(epoch - 1) * batches + done,
                             count=f"epoch {epoch}/{epochs}", info=info,
                             left="" if left is None else f"~{duration(left)} left")
        self._update_study()

    def epoch_done(self, number: int, epoch: int, epochs: int, result: EpochResult) -> None:
        running = self.running.get(number)
        if running is None:
            return
        running.last = f"loss {result.train_loss:.4f} · val {pct(result.val_accuracy)} · lr {result.lr:.2g}"
        if running.batches:
            running.at(epoch, epochs, running.batches, running.batches, running.images)
        self.progress.update(running.bar, completed=epoch * running.batches if running.batches else None,
                             count=f"epoch {epoch}/{epochs}", info=running.last)

    # Optuna callback ----------------------------------------------------------------------------
    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.counts[trial.state.name] = self.counts.get(trial.state.name, 0) + 1
        running = self.running.pop(trial.number, None)
        if running is not None:
            self.durations.append(time.perf_counter() - running.opened)
            if self.running:  # others still train: hide this bar until reused
                self.progress.update(running.bar, visible=False)
            self.free_bars.append(running.bar)
        if trial.state == TrialState.COMPLETE and (self.best is None or trial.value > self.best):
            self.best = trial.value
        self.progress.advance(self.trials_task)
        self.progress.update(self.trials_task, count=self._count(sum(self.counts.values())))
        self._update_study()
        if not self.live:
            self.console.print(trial_line(trial), highlight=False)


class _Running:
    """How far one running trial is, and how fast it goes, from its progress events."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.opened = time.perf_counter()  # the trial's start, its model's building included
        self.started = self.opened  # its pace is measured from its first progress event
        self.first: float | None = None  # fraction done at the first event (a resumed trial's epochs)
        self.fraction = 0.0
        self.epoch_started = self.started
        self.batches = 0
        self.images = 0
        self.rate: float | None = None  # images per second in this epoch
        self.last = ""  # the last epoch's result

    def at(self, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        now = time.perf_counter()
        if done == 0:
            self.epoch_started = now
        elif now > self.epoch_started:
            self.rate = images / (now - self.epoch_started)
        self.batches, self.images = batches, images
        self.fraction = ((epoch - 1) * batches + done) / (epochs * batches)
        if self.first is None:
            self.first, self.started = self.fraction, now

    def left(self) -> float | None:
        """Seconds until the trial has trained all its epochs, at its pace so far."""
        if self.first is None or self.fraction <= self.first:
            return None
        elapsed = time.perf_counter() - self.started
        return elapsed / (self.fraction - self.first) * (1 - self.fraction)

    def projected(self) -> float | None:
        left = self.left()
        return None if left is None else time.perf_counter() - self.started + left


def trial_line(trial: FrozenTrial) -> str:
    """``trial 3 pruned epochs=1 0.8s lr=0.01 ... — val 71.50% at epoch 1 below the pruner's bar``."""
    record = view(trial)
    head = f"trial {record.number} {record.state.lower()}"
    if record.reference:
        head += " (reference)"
    if record.where:
        head += f" on {record.where}"
    if record.value is not None:
        head += f" {pct(record.value)}"
    params = " ".join(f"{k}={fmt(record.hparams.get(k))}" for k in KEY_PARAMS if record.hparams.get(k) is not None)
    duration = f" {record.duration_s:.1f}s" if record.duration_s is not None else ""
    tail = f" — {record.reason}" if record.reason else ""
    return f"{head} epochs={record.epochs_run}{duration} {params}{tail}"
