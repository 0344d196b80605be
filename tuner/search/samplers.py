"""The sampler and pruner that ``--sampler`` and ``--pruner`` name. Optuna is imported when one
is made: the CLI reads the names from here."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tuner.errors import UsageError

if TYPE_CHECKING:
    import optuna

MAX_SEED = 2**32 - 1  # numpy's seeds, which Optuna's samplers use


def _optuna() -> Any:
    import optuna

    return optuna


#: ``--sampler`` names and the Optuna sampler each makes from a seed.
SAMPLERS: dict[str, Callable[[int | None], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: _optuna().samplers.TPESampler(seed=seed),
    "random": lambda seed: _optuna().samplers.RandomSampler(seed=seed),
    # CMA-ES handles the numeric part; categorical choices fall back to random sampling.
    "cmaes": lambda seed: _optuna().samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
    "qmc": lambda seed: _optuna().samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
}

#: ``--pruner`` names and the Optuna pruner each makes from (epochs, startup trials). Each but
#: "none" is wrapped in :class:`tuner.search.pruning.SchedulePruner` (warm-up, learning-rate drops).
PRUNERS: dict[str, Callable[[int, int], optuna.pruners.BasePruner]] = {
    "median": lambda epochs, startup: _optuna().pruners.MedianPruner(n_startup_trials=startup),
    "hyperband": lambda epochs, startup: _optuna().pruners.HyperbandPruner(min_resource=1,
                                                                           max_resource=max(epochs, 1)),
    "sha": lambda epochs, startup: _optuna().pruners.SuccessiveHalvingPruner(min_resource=1),
    "none": lambda epochs, startup: _optuna().pruners.NopPruner(),
}


#: ``--prior`` names: around the reference (tuner.search.prior), or by the sampler alone.
PRIORS = ("reference", "none")


def make_sampler(name: str, seed: int | None, per_process: bool = False,
                 prior: dict[str, Any] | None = None, val_examples: int | None = None,
                 device: str | None = None) -> optuna.samplers.BaseSampler:
    """The sampler ``--sampler`` names, reading the study once per trial (:class:`SnapshotSampler`).

    ``per_process``: draw from the seed plus the number of this process's first trial, so that
    processes started at the same moment on one study (two terminals, two machines, --jobs
    workers) draw apart, while a single seeded process draws what it always did: its first
    trial is the number of trials stored before it.

    ``prior``: the reference as Optuna params; the trials are then drawn around it at first
    (:class:`tuner.search.prior.PriorSampler`, which reads ``val_examples``).

    ``device``: the kind of device the trials run on; batch sizes that ran out of memory on it
    are not drawn again (:class:`tuner.search.fits.FitSampler`)."""
    if name not in SAMPLERS:
        raise UsageError(f"--sampler {name!r}: choose one of {', '.join(SAMPLERS)}")

    def made(s: int | None) -> optuna.samplers.BaseSampler:
        sampler = SAMPLERS[name](s)
        if prior:
            from tuner.search.prior import PriorSampler

            sampler = PriorSampler(sampler, prior, s, val_examples)
        if device is None:
            return sampler
        from tuner.search.fits import FitSampler

        return FitSampler(sampler, device)

    restart = None
    if per_process and seed is not None:
        def restart(first_trial: int) -> optuna.samplers.BaseSampler:
            return made((seed + first_trial) % (MAX_SEED + 1))
    from tuner.search.snapshot import SnapshotSampler

    return SnapshotSampler(made(seed), restart=restart)


def make_pruner(name: str, epochs: int, startup: int, warmup: int | None) -> optuna.pruners.BasePruner:
    """The pruner ``--pruner`` names; ``warmup`` None: :func:`tuner.search.pruning.auto_warmup`."""
    if name not in PRUNERS:
        raise UsageError(f"--pruner {name!r}: choose one of {', '.join(PRUNERS)}")
    base = PRUNERS[name](epochs, startup)
    if name == "none":
        return base
    from tuner.search.pruning import SchedulePruner, auto_warmup

    return SchedulePruner(base, auto_warmup(epochs) if warmup is None else warmup)
