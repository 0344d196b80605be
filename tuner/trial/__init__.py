"""One Optuna trial's life: sampled, built, trained epoch by epoch, recorded, reported, pruned, kept.

- :mod:`tuner.trial.objective`: the objective: sample, build, train, report, prune, keep weights.
- :mod:`tuner.trial.checkpoint`: a running trial's state saved at an epoch's end, loaded by its retry.
- :mod:`tuner.trial.recipe`: what re-training a trial needs, built in one place.
- :mod:`tuner.trial.recorder`: a trial's epochs recorded, alone or in a cohort: row, report, prune, clocks.
- :mod:`tuner.trial.events`: what a running trial tells the live view, and the codec between processes.
"""

from tuner.faces import face

OFFERS = {
    "Forward": "events",
    "Listener": "events",
    "Objective": "objective",
    "deliver": "events",
    "enqueue_reference": "objective",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
