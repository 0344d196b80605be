"""The reference's settings as a prior: early trials are drawn around them, fewer as trials finish;
once another trial has beaten the prior, around the best trial instead.

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

Each trial's decision and draws come from a generator seeded by (seed, trial number), so a seeded
study draws the same trials every time, and every process (``--jobs``, many machines) draws its
own. The decision is stored on the trial (:data:`tuner.storage.records.DRAWN`: ``prior`` or
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

from tuner.storage import records
from tuner.study.stopping import standard_error

STRENGTH = 4.0  # finished trials at which half the trials are drawn around the centre (p = 1/2)
SPREAD = 0.15  # a numeric prior's standard deviation, as a share of its range (log range: in log space)
KEEP_CHOICE = 0.5  # a categorical prior keeps the reference's choice this often, else draws uniformly
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def best_reported(trial: FrozenTrial) -> float | None:
    """A finished trial's best validation accuracy at any epoch (a pruned one has no value)."""
    reported = list(trial.intermediate_values.values())
    if trial.value is not None:
        reported.append(trial.value)
    finite = [v for v in reported if math.isfinite(v)]
    return max(finite) if finite else None


def from_prior(trial: FrozenTrial) -> bool:
    """The reference, and every trial drawn around it."""
    return bool(trial.user_attrs.get(records.REFERENCE)) or trial.user_attrs.get(records.DRAWN) == records.PRIOR


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


def draw_around(rng: np.random.Generator, centre: Any, distribution: BaseDistribution) -> Any:
    """One value of ``distribution`` drawn around ``centre``."""
    if isinstance(distribution, CategoricalDistribution):
        if centre in distribution.choices and rng.random() < KEEP_CHOICE:
            return centre
        return distribution.choices[int(rng.integers(len(distribution.choices)))]
    assert isinstance(distribution, FloatDistribution | IntDistribution)
    low, high = float(distribution.low), float(distribution.high)
    to, back = (math.log, math.exp) if distribution.log else (float, float)
    lo, hi = to(low), to(high)
    x = float(np.clip(rng.normal(to(float(centre)), SPREAD * (hi - lo)), lo, hi))
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
        prior: The reference as Optuna params (``training.space.fixed_params_for``).
        seed: With the trial number, seeds each trial's decision and draws (None: unseeded).
        val_examples: The validation set's size: a non-prior trial leaves the prior behind when it
            beats the prior's best by more than one standard error of its accuracy on it.
    """

    def __init__(self, base: optuna.samplers.BaseSampler, prior: Mapping[str, Any], seed: int | None,
                 val_examples: int | None = None) -> None:
        self.base = base
        self.prior = dict(prior)
        self.seed = seed
        self.val_examples = val_examples
        self._number: int | None = None
        self._centre: dict[str, Any] = self.prior
        self._rng = np.random.default_rng()

    def __str__(self) -> str:
        return f"{self.base} around the reference"

    def _drawing(self, trial: FrozenTrial) -> bool:
        return self._number == trial.number

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)
        self._number = None
        if trial.user_attrs.get(records.REFERENCE) or "fixed_params" in trial.system_attrs or not self.prior:
            return  # queued (the reference, a retry): its params are given
        self._rng = np.random.default_rng(None if self.seed is None else [self.seed, trial.number])
        finished = study._get_trials(deepcopy=False, states=FINISHED, use_cache=True)
        if self._rng.random() >= centre_probability(finished):
            return
        best = left_behind(finished, self.val_examples)
        self._number, self._centre = trial.number, self.prior if best is None else best.params
        # Private API, as Optuna's own samplers use it (GridSampler.before_trial): a sampler has no
        # public call that writes on the trial. Pinned by tests/test_optuna_private.py.
        study._storage.set_trial_user_attr(trial._trial_id, records.DRAWN,
                                           records.PRIOR if best is None else records.AROUND_BEST)

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
        if self._drawing(trial) and param_name in self._centre:
            return draw_around(self._rng, self._centre[param_name], param_distribution)
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._number = None
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
