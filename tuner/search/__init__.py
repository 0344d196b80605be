"""Search: what a study may try and which trial it tries next; no torch, no training, no trials run.

- :mod:`tuner.search.space`: the space (defaults, the plugin's, the user's) and sampling it.
- :mod:`tuner.search.samplers`: the sampler and pruner that ``--sampler`` and ``--pruner`` name.
- :mod:`tuner.search.prior`: the reference's learning rate walked, then draws around it and the best.
- :mod:`tuner.search.snapshot`: the sampler reads the study once per trial, not once per parameter.
- :mod:`tuner.search.fits`: batch sizes that ran out of memory on a kind of device, not drawn there.
- :mod:`tuner.search.pruning`: no pruning in the warm-up or just after a learning-rate drop.
- :mod:`tuner.search.stopping`: ``--trials auto``, the study stopped once more trials stop paying.
"""

from tuner.faces import face

OFFERS = {
    "DEFAULT_SPACE": "space",
    "FitSampler": "fits",
    "KEEP_CHOICE": "prior",
    "PRUNERS": "samplers",
    "PriorSampler": "prior",
    "SAMPLERS": "samplers",
    "SPREAD": "prior",
    "SchedulePruner": "pruning",
    "SnapshotSampler": "snapshot",
    "StopAtNoise": "stopping",
    "acting": "space",
    "applies": "space",
    "auto_warmup": "pruning",
    "build_space": "space",
    "draw_around": "prior",
    "fixed_params_for": "space",
    "hyperparameters": "space",
    "lr_step": "prior",
    "make_pruner": "samplers",
    "make_sampler": "samplers",
    "parse_entry": "space",
    "parse_toml": "space",
    "sample": "space",
    "sample_reference": "space",
    "standard_error": "stopping",
    "stop_reason": "stopping",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
