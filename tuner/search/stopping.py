"""``--trials auto``: the study stops once more trials have stopped showing a better model.

The rule, in the spirit of Optuna's Terminator (stop when the gain still to be had is below the
noise of the objective) but counted instead of modelled: once :data:`AUTO_MIN` trials have
finished, the study stops when the best validation accuracy rose by less than one standard error
of that accuracy (``sqrt(p (1 - p) / n)`` over the ``n`` validation examples) across the last
:data:`AUTO_PATIENCE` finished trials, or after :data:`AUTO_MAX` new trials. The reason is stored
on the study (:data:`tuner.storage.records.STOPPED`) and said by ``tuner best``.
"""

from __future__ import annotations

import math

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.storage import records

AUTO_MIN = 8  # finished trials (the reference among them) before the study may stop
AUTO_PATIENCE = 6  # finished trials over which the best must rise by a standard error
AUTO_MAX = 100  # new trials at most


def standard_error(accuracy: float, n: int) -> float:
    """The standard error of an accuracy measured on ``n`` examples (at least one example's worth
    of variance, so that a perfect score is not certain)."""
    return math.sqrt(max(accuracy * (1 - accuracy), 1 / n) / n)


def best_so_far(trials: list[FrozenTrial]) -> list[float]:
    """After each finished trial (in order of number), the best completed value yet (-inf: none)."""
    best, curve = -math.inf, []
    for t in trials:
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            best = max(best, t.value)
        curve.append(best)
    return curve


def stop_reason(trials: list[FrozenTrial], val_examples: int, patience: int = AUTO_PATIENCE,
                minimum: int = AUTO_MIN) -> str | None:
    """Why the study should stop now, or None to go on. ``trials``: the study's, any state."""
    finished = sorted((t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)),
                      key=lambda t: t.number)
    if len(finished) < max(minimum, patience + 1):
        return None
    curve = best_so_far(finished)
    now, before = curve[-1], curve[-1 - patience]
    if not math.isfinite(now):
        return None
    se = standard_error(now, val_examples)
    if now - before >= se:
        return None
    return (f"--trials auto: the best rose {100 * (now - max(before, 0.0)):.2f} pts over the last {patience} "
            f"trials, under one standard error ({100 * se:.2f} pts on {val_examples} validation examples); "
            f"stopped after {len(finished)} finished trials")


class StopAtNoise:
    """Optuna callback of ``--trials auto``: stops the study (see the module's docstring) and
    records why. :attr:`reason` is set once it has; ``--jobs`` reads it to close the budget."""

    def __init__(self, val_examples: int) -> None:
        self.val_examples = val_examples
        self.reason: str | None = None
        # --jobs: the main process closes the workers' budget instead (study.stop() works only
        # inside this process's own optimize loop)
        self.in_workers = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.reason is None:
            self.reason = stop_reason(study.get_trials(deepcopy=False), self.val_examples)
            if self.reason is None:
                return
            study.set_user_attr(records.STOPPED, {"reason": self.reason, "after_trial": trial.number,
                                                  "at": records.now_iso()})
        if not self.in_workers:
            study.stop()

