"""Planning: what happens before trial 0, measured on this machine: a pair checked, a step timed,
memory and fusing probed, how many trials at once, what the study will cost, the cluster reached.

- :mod:`tuner.planning.check`: a pair checked on one batch of its own data, and its step timed.
- :mod:`tuner.planning.timing`: how long a step and an evaluation take on the device.
- :mod:`tuner.planning.memory`: what one trial holds at the peak of a step, measured.
- :mod:`tuner.planning.fusing`: whether fusing trials pays on this device, and the K it picks.
- :mod:`tuner.planning.jobs`: ``--jobs auto``: how many trials fit at once.
- :mod:`tuner.planning.estimate`: what the study will cost, said before its first trial.
- :mod:`tuner.planning.ray_connect`: the Ray cluster ``--ray`` names, reached before anything is made.
"""

from tuner.faces import face

OFFERS = {
    "Estimate": "estimate",
    "Timing": "timing",
    "auto_jobs": "jobs",
    "contract_step": "check",
    "duration": "timing",
    "measure": "timing",
    "plan": "jobs",
    "probe": "fusing",
    "reference_trainer": "check",
    "step_peak_bytes": "memory",
    "step_timing": "check",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
