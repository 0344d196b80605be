"""Training, in torch alone: the loop that trains one model, a fused cohort of models, devices.

- :mod:`tuner.training.loop`: the training loop and evaluation; where a study spends its time.
- :mod:`tuner.training.fused`: K trials of one architecture trained as one stacked model (a cohort).
- :mod:`tuner.training.device`: which device trials run on.

Never imports Optuna: what a trial means to the study is :mod:`tuner.trial`.
"""

from tuner.faces import face

OFFERS = {
    "CannotFuse": "fused",
    "Cohort": "fused",
    "DoesNotFit": "loop",
    "EpochResult": "loop",
    "Trainer": "loop",
    "correct_examples": "loop",
    "device_kind": "device",
    "eval_batch_size": "loop",
    "evaluate": "loop",
    "resolve_device": "device",
    "start_training": "loop",
    "trial_seed": "loop",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
