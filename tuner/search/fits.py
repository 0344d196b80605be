"""Batch sizes that ran out of memory on a kind of device, kept out of later trials' draws there.

A trial whose step runs out of memory splits it into micro-batches (tuner.training.loop); only when
one image does not fit does it fail, and it records the batch size and the kind of device
(``records.DOES_NOT_FIT``: the GPU's model and memory, so every GPU of the machine learns from
one). :class:`FitSampler` wraps the study's sampler: a batch size at or above the smallest one
that did not fit on this process's kind of device is replaced by the largest below it, so that
Optuna's samplers (TPE, the prior, any other) never propose it again there, and the trial's
stored params say what trained. When the space has nothing below it, the study stops with one
line (:meth:`tuner.trial.objective.Objective.after_trial`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tuner.storage import records

BATCH = "batch_size"


def below(distribution: BaseDistribution, value: Any, limit: int) -> Any:
    """``value``, or the largest value of ``distribution`` below ``limit`` when it is not below;
    ``value`` itself when the distribution has none below."""
    if not isinstance(value, int | float) or value < limit:
        return value
    if isinstance(distribution, CategoricalDistribution):
        smaller = [c for c in distribution.choices if isinstance(c, int | float) and c < limit]
        return max(smaller) if smaller else value
    if isinstance(distribution, IntDistribution) and not distribution.log:
        top = distribution.low + (limit - 1 - distribution.low) // distribution.step * distribution.step
        return top if top >= distribution.low else value
    if isinstance(distribution, IntDistribution):
        return limit - 1 if limit - 1 >= distribution.low else value
    return value


class FitSampler(optuna.samplers.BaseSampler):
    """Wraps any Optuna sampler; see the module's docstring. ``device``: this process's kind of
    device (:func:`tuner.training.device.device_kind`)."""

    def __init__(self, base: optuna.samplers.BaseSampler, device: str) -> None:
        self.base = base
        self.device = device

    def __str__(self) -> str:
        return str(self.base)

    def _limit(self, study: optuna.Study) -> int | None:
        found = records.fit_limit(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)), self.device)
        return None if found is None else found[0]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.base.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        drawn = self.base.sample_relative(study, trial, search_space)
        if BATCH in drawn and (limit := self._limit(study)) is not None:
            drawn[BATCH] = below(search_space[BATCH], drawn[BATCH], limit)
        return drawn

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        value = self.base.sample_independent(study, trial, param_name, param_distribution)
        if param_name == BATCH and (limit := self._limit(study)) is not None:
            value = below(param_distribution, value, limit)
        return value

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
