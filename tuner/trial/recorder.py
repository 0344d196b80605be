"""One trial's epochs recorded, whoever trains it, alone or as a member of a fused cohort: the
history row, the reported value, the live view, the prune decision, the checkpoint clock and the
``--timeout`` check, each written once.

A history row is ``{"epoch", "train_loss", "val_loss", "val_accuracy", "lr", "lr_next",
"seconds"}``; ``seconds`` is the trial's share of the epoch's wall time (alone, all of it; in a
cohort of K, a K-th: what the trial cost the study). A trial alone whose steps ran out of memory
records the micro-batches it split them into (``records.SPLIT``); a cohort that runs out of
memory trains smaller cohorts instead, so its members never split.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import optuna

from tuner.errors import TrialFailed
from tuner.storage import records

# Saving a checkpoint may cost at most this share of the training time between two saves.
CHECKPOINT_SHARE = 0.02


class CheckpointClock:
    """When running trials save their state: at an epoch's end once ``every`` seconds of training
    have passed since the last save (0: every epoch; None: never), never after the last epoch;
    above 0, the wait grows so that saving costs at most :data:`CHECKPOINT_SHARE` of training (a
    save of AlexNet with Adam is 700 MB)."""

    def __init__(self, every: float | None) -> None:
        self.every = every
        self.last = time.perf_counter()

    def due(self, epoch: int, epochs: int) -> bool:
        """Whether the end of ``epoch`` (0-based) of ``epochs`` saves."""
        return self.every is not None and epoch + 1 < epochs and time.perf_counter() - self.last >= self.every

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.last = time.perf_counter()
        if self.every:
            self.every = max(self.every, (self.last - began) / CHECKPOINT_SHARE)


def past_deadline(deadline: float | None, epoch_s: float | None) -> bool:
    """Whether an epoch as long as the last one (``epoch_s``; None before the first) would end
    after ``--timeout``'s ``deadline`` (a ``time.time()``)."""
    return deadline is not None and epoch_s is not None and time.time() + epoch_s > deadline


def batch_progress(listener: Any, numbers: list[int], epoch: int, epochs: int, images: int,
                   batch_size: int) -> Callable[[int, int], None]:
    """What tells the listener how far epoch ``epoch`` (1-based) of the trials ``numbers`` is."""

    def told(done: int, batches: int) -> None:
        seen = images if done == batches else min(images, done * batch_size)
        for number in numbers:
            listener.batch_done(number, epoch, epochs, done, batches, seen)

    return told


class EpochRecorder:
    """Records trial ``trial``'s epochs into ``history`` (a retry's starts with its original's)."""

    def __init__(self, trial: optuna.Trial, epochs: int, listener: Any,
                 history: list[dict[str, float]] | None = None) -> None:
        self.trial, self.epochs, self.listener = trial, epochs, listener
        self.history = history if history is not None else []
        self.split = 1

    def record(self, epoch: int, result: Any, lr_next: float, seconds: float, split: int = 1) -> None:
        """Epoch ``epoch`` (0-based) trained to ``result``: stored, reported and shown. A loss that
        is not finite fails the trial (:class:`TrialFailed`, its reason stored) before anything
        else. ``lr_next``: the rate the next epoch trains at (lower when the schedule dropped it,
        :mod:`tuner.search.pruning`); ``split``: the micro-batches each step now takes."""
        trial = self.trial
        if not math.isfinite(result.train_loss):
            reason = f"training loss became {result.train_loss} in epoch {epoch + 1}"
            trial.set_user_attr(records.FAIL_REASON, reason)
            raise TrialFailed(reason)
        self.history.append({
            "epoch": epoch + 1,
            "train_loss": result.train_loss,
            "val_loss": result.val_loss,
            "val_accuracy": result.val_accuracy,
            "lr": result.lr,
            "lr_next": lr_next,
            "seconds": round(seconds, 4),
        })
        trial.set_user_attr(records.HISTORY, self.history)
        if split > self.split:  # ran out of memory: its steps are split from now on
            self.split = split
            trial.set_user_attr(records.SPLIT, split)
        trial.report(result.val_accuracy, epoch)
        self.listener.epoch_done(trial.number, epoch + 1, self.epochs, result)

    def pruned(self, epoch: int, result: Any) -> bool:
        """Whether the pruner stops the trial after ``epoch`` (its reason stored); never after the
        last epoch: the work is done, and completing costs nothing and tells more."""
        if epoch + 1 >= self.epochs or not self.trial.should_prune():
            return False
        self.trial.set_user_attr(records.PRUNE_REASON,
                                 f"val {100 * result.val_accuracy:.2f}% at epoch {epoch + 1} below the pruner's bar")
        return True
