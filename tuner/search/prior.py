"""The reference's settings as a prior: its learning rate walked first, then early trials drawn
around it, fewer as trials finish; once another trial has beaten the prior, around the best trial.

Optuna's TPE draws its first ``n_startup_trials`` (10) at random, then models what it has seen:
in a 20-trial study half the budget ignores the expert settings every seed comes with. Following
PriorBand (Mallik et al., NeurIPS 2023: sample from the prior, from around the incumbent, or
uniformly, the prior's share decaying and dropping once the incumbent is not the prior's) and
piBO (Hvarfner et al., ICLR 2022: the prior's weight decays as evidence comes in),
:class:`PriorSampler` decides per trial, with probability

    p = STRENGTH / (STRENGTH + finished trials)

whether the trial is drawn around a centre — each parameter from a distribution centred on it (a
normal of :data:`SPREAD` of the range's width, in log space for a log range; the centre's own
choice half the time for a categorical) — or by the sampler it wraps. The centre is the reference
until a trial not drawn from it beats every trial that was (the reference too) by more than one
standard error of the validation accuracy; from then on it is the best trial so far, so a
deliberately bad reference is left behind after one trial that does better.

Before any of that, the learning rate — the setting that matters most, and the one an expert
moves first — is walked from the reference: the reference with only its rate multiplied by
:data:`LR_FACTOR`, upwards when the reference's validation accuracy was still rising at its last
epoch (it had more to learn than its epochs gave it) and downwards otherwise; on in that direction
while each step beats the best so far, back the other way once if the first step did not, and at
most :data:`LR_STEPS` steps (:func:`lr_step`). Each step is one ordinary trial, pruned like any
other. Two trials at a time (``--jobs``, a cohort) take the first step both ways at once, then
one step runs at a time while the others draw as below. The draws around the reference
then centre on the reference at the best rate the walk found.

Each trial's decision and draws come from a generator seeded by (seed, trial number), so a seeded
study draws the same trials every time, and every process (``--jobs``, many machines) draws its
own. The decision is stored on the trial (:data:`tuner.storage.records.DRAWN`: ``lr``, ``prior`` or
``best``), which ``tuner best`` counts and the next decisions read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from tuner.search.stopping import standard_error
from tuner.storage import records

STRENGTH = 4.0  # finished trials at which half the trials are drawn around the centre (p = 1/2)
SPREAD = 0.15  # a numeric prior's standard deviation, as a share of its range (log range: in log space)
KEEP_CHOICE = 0.5  # a categorical prior keeps the reference's choice this often, else draws uniformly
LR_FACTOR = 3.0  # one step of the learning-rate walk: half a decade
LR_STEPS = 4  # the walk's most steps (a rate a hundred times off is found in four)
LR = "lr"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def best_reported(trial: FrozenTrial) -> float | None:
    """A finished trial's best validation accuracy at any epoch (a pruned one has no value)."""
    reported = list(trial.intermediate_values.values())
    if trial.value is not None:
        reported.append(trial.value)
    finite = [v for v in reported if math.isfinite(v)]
    return max(finite) if finite else None


def from_prior(trial: FrozenTrial) -> bool:
    """The reference, its learning-rate steps, and every trial drawn around it."""
    return (bool(trial.user_attrs.get(records.REFERENCE))
            or trial.user_attrs.get(records.DRAWN) in (records.PRIOR, records.LR_STEP))


def _completed(trial: FrozenTrial) -> float:
    """A finished trial's final value; a pruned one lost (the pruner judged it worse)."""
    if trial.state == TrialState.COMPLETE and trial.value is not None and math.isfinite(trial.value):
        return trial.value
    return -math.inf


def still_rising(trial: FrozenTrial) -> bool:
    """Whether the trial's validation accuracy was at its highest at its last epoch (it had more
    to learn than its epochs gave it); True when it has no history to tell."""
    accuracies = [row["val_accuracy"] for row in trial.user_attrs.get(records.HISTORY, [])
                  if math.isfinite(row.get("val_accuracy", math.nan))]
    return len(accuracies) < 2 or accuracies[-1] > max(accuracies[:-1])


def _steps(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The walk's steps among ``trials``."""
    return [t for t in trials if t.user_attrs.get(records.DRAWN) == records.LR_STEP and LR in t.params]


def lr_step(trials: Sequence[FrozenTrial], reference_lr: float,
            distribution: BaseDistribution) -> float | None:
    """The learning rate of the walk's next step, given the study's trials; None when the walk is
    over, waits for a running step or for the reference, or cannot go on inside the range."""
    if not isinstance(distribution, FloatDistribution):
        return None
    reference, steps = records.reference_among(trials), _steps(trials)
    if reference is None or reference.state not in FINISHED or len(steps) >= LR_STEPS:
        return None
    if any(t.state == TrialState.RUNNING for t in steps):
        if len(steps) == 1:  # two trials at a time (--jobs, a cohort): the first step both ways at once
            other = reference_lr * LR_FACTOR ** (-1 if steps[0].params[LR] > reference_lr else 1)
            return other if distribution.low <= other <= distribution.high else None
        return None  # then one step at a time
    best_lr, best = reference_lr, _completed(reference)
    direction, turned, improved = (1 if still_rising(reference) else -1), False, False
    for step in sorted(steps, key=lambda t: t.number):  # a failed step lost, as a pruned one did
        went = 1 if step.params[LR] > best_lr else -1
        if _completed(step) > best:
            best_lr, best, direction, improved = step.params[LR], _completed(step), went, True
        elif improved and went != direction:
            continue  # the losing side of a first step taken both ways: the walk goes on the other
        elif improved or turned:
            return None  # past the best rate, or both ways tried
        else:
            direction, turned = -went, True
    while True:
        lr = best_lr * LR_FACTOR ** direction
        if distribution.low <= lr <= distribution.high:
            return lr
        if improved or turned:
            return None
        direction, turned = -direction, True


def centre_probability(finished: Sequence[FrozenTrial]) -> float:
    """How likely the next trial is drawn around the centre, given the trials finished so far."""
    return STRENGTH / (STRENGTH + len(finished))


def left_behind(finished: Sequence[FrozenTrial], val_examples: int | None) -> FrozenTrial | None:
    """The best finished trial once a trial not drawn from the prior beat the prior's best by more
    than a standard error, else None (the prior still holds)."""
    prior_best = max((v for t in finished if from_prior(t) and (v := best_reported(t)) is not None),
                     default=-math.inf)
    others = [(v, t) for t in finished if not from_prior(t) and (v := best_reported(t)) is not None]
    if not others:
        return None
    other_best, other = max(others, key=lambda vt: vt[0])
    margin = standard_error(other_best, val_examples) if val_examples else 0.0
    if other_best <= prior_best + margin:
        return None
    completed = [(t.value, t) for t in finished if t.state == TrialState.COMPLETE and t.value is not None]
    return max(completed, key=lambda vt: vt[0])[1] if completed else other


def draw_around(rng: np.random.Generator, centre: Any, distribution: BaseDistribution,
                spread: float = SPREAD, keep_choice: float = KEEP_CHOICE) -> Any:
    """One value of ``distribution`` drawn around ``centre`` (see :data:`SPREAD`, :data:`KEEP_CHOICE`)."""
    if isinstance(distribution, CategoricalDistribution):
        if centre in distribution.choices and rng.random() < keep_choice:
            return centre
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    low, high = float(distribution.low), float(distribution.high)
    to, back = (math.log, math.exp) if distribution.log else (float, float)
    lo, hi = to(low), to(high)
    x = float(np.clip(rng.normal(to(float(centre)), spread * (hi - lo)), lo, hi))
    value = min(max(back(x), low), high)
    step = distribution.step
    if step is not None:
        value = low + round((value - low) / step) * step
        value = min(max(value, low), high)
    return round(value) if isinstance(distribution, IntDistribution) else value


class PriorSampler(optuna.samplers.BaseSampler):
    """Wraps ``base``; see the module's docstring.

    Args:
        base: The sampler that draws the trials not drawn from the prior.
        prior: The reference as Optuna params (``search.space.fixed_params_for``).
        seed: With the trial number, seeds each trial's decision and draws (None: unseeded).
        val_examples: The validation set's size: a non-prior trial leaves the prior behind when it
            beats the prior's best by more than one standard error of its accuracy on it.
        spread, keep_choice: How far the draws around a centre go (:data:`SPREAD`,
            :data:`KEEP_CHOICE`; the search benchmark varies them).
    """

    def __init__(self, base: optuna.samplers.BaseSampler, prior: Mapping[str, Any], seed: int | None,
                 val_examples: int | None = None, *, spread: float = SPREAD,
                 keep_choice: float = KEEP_CHOICE) -> None:
        self.base = base
        self.spread, self.keep_choice = spread, keep_choice
        self.prior = dict(prior)
        self.seed = seed
        self.val_examples = val_examples
        self._number: int | None = None
        self._centre: dict[str, Any] = self.prior
        self._lr: float | None = None  # this trial's rate, when it is a step of the walk
        self._rng = np.random.default_rng()

    def __str__(self) -> str:
        return f"{self.base} around the reference"

    def _drawing(self, trial: FrozenTrial) -> bool:
        return self._number == trial.number

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        self._number, self._lr = None, None
        if trial.user_attrs.get(records.REFERENCE) or "fixed_params" in trial.system_attrs or not self.prior:
            return  # queued (the reference, a retry): its params are given
        self._rng = np.random.default_rng(None if self.seed is None else [self.seed, trial.number])
        trials = [t for t in study._get_trials(deepcopy=False, use_cache=True) if t.number != trial.number]
        finished = [t for t in trials if t.state in FINISHED]
        reference = records.reference_among(trials)
        distribution = None if reference is None else reference.distributions.get(LR)
        if LR in self.prior and distribution is not None:
            self._lr = lr_step(trials, self.prior[LR], distribution)
        if self._lr is not None:
            self._number, self._centre, drawn = trial.number, self.prior, records.LR_STEP
        else:
            if self._rng.random() >= centre_probability(finished):
                return
            best = left_behind(finished, self.val_examples)
            self._number = trial.number
            self._centre, drawn = (self._walked(finished), records.PRIOR) if best is None \
                else (best.params, records.AROUND_BEST)
        # Private API, as Optuna's own samplers use it (GridSampler.before_trial): a sampler has no
        # public call that writes on the trial. Pinned by tests/test_optuna_private.py.
        study._storage.set_trial_user_attr(trial._trial_id, records.DRAWN, drawn)

    def _walked(self, finished: Sequence[FrozenTrial]) -> dict[str, Any]:
        """The reference's params at the best learning rate its walk found."""
        steps, reference = _steps(finished), records.reference_among(finished)
        if not steps or reference is None:
            return self.prior
        best = max(steps, key=_completed)
        return {**self.prior, LR: best.params[LR]} if _completed(best) > _completed(reference) else self.prior

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._drawing(trial):
            return {}
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if self._drawing(trial):
            return {}
        return self.base.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._drawing(trial):
            if self._lr is not None and param_name == LR:
                return self._lr
            if self._lr is not None and param_name in self._centre:
                return self._centre[param_name]  # a step of the walk: the reference but for its rate
            if param_name in self._centre:
                return draw_around(self._rng, self._centre[param_name], param_distribution,
                                   self.spread, self.keep_choice)
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._number, self._lr = None, None
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
