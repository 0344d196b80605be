"""One read of the study per trial for the sampler, instead of one per parameter.

Optuna's samplers read the study's trials again for every parameter they sample: TPE asks the
storage for the trial history once for its joint (relative) draw and once more for each
parameter it draws on its own. Through SQLite each read is several SQL queries, even when only
the running trial changed, which grows with the stored trials (docs/benchmarks.md, benchmark
2). :class:`SnapshotSampler` reads the trials once when a trial starts and hands the sampler
that snapshot for the rest of the trial's sampling.

Nothing the sampler sees changes: in one process no other trial can finish while a trial is
sampling its parameters, so the snapshot holds exactly what the repeated reads returned, and a
seeded study draws the same parameters with or without it (tested). With several workers on
one storage, a trial finished by another worker during those milliseconds is seen by the next
trial instead, as it would be if it had finished a moment later.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


class _StudySnapshot:
    """A study whose trial reads answer from one read made at construction; all else delegates."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        # Private API: the cached read is what Optuna's own samplers call; the public get_trials
        # has no use_cache. Pinned by tests/test_optuna_private.py.
        self._snapshot = study._get_trials(deepcopy=False, use_cache=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = self._snapshot if states is None else [t for t in self._snapshot if t.state in states]
        return copy.deepcopy(trials) if deepcopy else list(trials)

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self._get_trials()


class SnapshotSampler(optuna.samplers.BaseSampler):
    """Wraps any Optuna sampler; see the module's docstring. ``base`` is the sampler that draws.

    ``restart``: called once, with the number of the first trial this process samples, to make
    the sampler that draws from then on (a seed stream of this process's own: see
    :func:`tuner.search.samplers.make_sampler`)."""

    def __init__(self, base: optuna.samplers.BaseSampler,
                 restart: Callable[[int], optuna.samplers.BaseSampler] | None = None) -> None:
        self.base = base
        self._restart = restart
        self._trial_number: int | None = None
        self._view: _StudySnapshot | None = None

    def __str__(self) -> str:
        return str(self.base)

    def _study_for(self, study: optuna.Study, trial: FrozenTrial) -> _StudySnapshot:
        if self._view is None or self._trial_number != trial.number:
            self._view, self._trial_number = _StudySnapshot(study), trial.number
        return self._view

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._restart is not None:
            self.base, self._restart = self._restart(trial.number), None
        self._view = None
        self.base.before_trial(self._study_for(study, trial), trial)  # type: ignore[arg-type]

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.base.infer_relative_search_space(self._study_for(study, trial), trial)  # type: ignore[arg-type]

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.base.sample_relative(self._study_for(study, trial), trial, search_space)  # type: ignore[arg-type]

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.base.sample_independent(
            self._study_for(study, trial), trial, param_name, param_distribution,  # type: ignore[arg-type]
        )

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._view, self._trial_number = None, None
        self.base.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()
