"""Training: the search space, the loop that trains one model, and one Optuna trial.

- :mod:`tuner.training.space`: the space (defaults, the plugin's, the user's) and sampling it.
- :mod:`tuner.training.device`: which device trials run on.
- :mod:`tuner.training.check`: a pair checked on one batch of its own data, and its step timed.
- :mod:`tuner.training.loop`: the training loop and evaluation; where a study spends its time.
- :mod:`tuner.training.timing`: how long a step and an evaluation take on the device.
- :mod:`tuner.training.trial`: one trial: sample, build, train epoch by epoch, report, prune.
- :mod:`tuner.training.checkpoint`: a running trial's state saved at an epoch's end, and loaded again.
- :mod:`tuner.training.fused`: K trials of one architecture trained as one stacked model (a cohort).
"""
