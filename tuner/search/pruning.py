"""Pruning that respects the training schedule: a warm-up that scales with the epochs, and no
trial stopped while its lowered learning rate has not yet had a chance to act.

ReduceLROnPlateau lowers a trial's learning rate when its validation loss stalls, which is when
its accuracy looks worst next to the others; one or two epochs later it often jumps. A median
pruner asked at that moment stops the trial just before the jump. :class:`SchedulePruner` wraps
any Optuna pruner and answers "go on" in the first ``warmup`` epochs, in the epoch whose end
lowered the rate, and in the ``settle`` epochs trained at the lowered rate, for each drop that
follows ``settle`` steady epochs (a rate lowered at every epoch is waited out once); otherwise the
wrapped pruner decides.
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial

from tuner.storage import records

SETTLE_EPOCHS = 2  # epochs trained at a lowered learning rate before the trial can be pruned
WARMUP_SHARE = 6  # the automatic warm-up: a sixth of the epochs, to the nearest (10: 2; 8: 1; 3: 0)


def auto_warmup(epochs: int) -> int:
    """Epochs a trial trains before it can be pruned, when ``--pruner-warmup`` is not given: a
    sixth of them, a half rounded down. Chosen by measurement (docs/benchmarks.md, section 10):
    at 8 epochs a trial, one epoch of warm-up saved 48% of ``lenet-mnist``'s epochs and 63% of
    ``mlp-mnist``'s with no more pruning regret than two (a quarter), which saved 37% and 49%;
    at 4, 6 and 10 epochs the two rules agree."""
    return (epochs + WARMUP_SHARE // 2 - 1) // WARMUP_SHARE


def lowered_lately(history: list[dict[str, float]], settle: int) -> bool:
    """Whether the learning rate was lowered at the end of the last epoch in ``history``
    (``lr_next``) or for one of its last ``settle`` epochs, by a fresh drop: one that came after
    ``settle`` epochs at a steady rate. A rate lowered at every epoch (ReduceLROnPlateau with
    patience 0 on a trial that is not learning) is waited out once, not for ever."""
    if not history:
        return False
    rates = [row["lr"] for row in history] + [history[-1].get("lr_next", history[-1]["lr"])]
    drops = [i for i in range(1, len(rates)) if rates[i] < rates[i - 1]]
    now = len(history)  # the index in rates of the epoch that would train next
    return any(now - settle <= i and not any(i - settle <= j < i for j in drops) for i in drops)


class SchedulePruner(optuna.pruners.BasePruner):
    """Wraps ``base``; see the module's docstring. ``warmup`` and ``settle`` count epochs."""

    def __init__(self, base: optuna.pruners.BasePruner, warmup: int, settle: int = SETTLE_EPOCHS) -> None:
        self.base = base
        self.warmup = warmup
        self.settle = settle

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None or step + 1 <= self.warmup:
            return False
        history = trial.user_attrs.get(records.HISTORY, [])[: step + 1]
        if lowered_lately(history, self.settle):
            return False
        return self.base.prune(study, trial)
