"""Execution: a prepared study's trials run, here, in worker processes, as fused cohorts or on Ray.

- :mod:`tuner.execution.run`: the entry: trials run one way or another until the budget is spent.
- :mod:`tuner.execution.budget`: what a run may still spend: trials, deadline, stop; one rule for all.
- :mod:`tuner.execution.cohorts`: ``--fuse``: trials drawn K at a time and trained as one cohort.
- :mod:`tuner.execution.parallel`: ``--jobs``: worker processes on one study.
- :mod:`tuner.execution.cluster`: ``--ray``: this process as the driver that hands trials to actors.
- :mod:`tuner.execution.actors`: what ``--ray`` runs on the nodes: the trial actor, the weights' keeper.
"""

from tuner.faces import face

OFFERS = {
    "Budget": "budget",
    "CohortRunner": "cohorts",
    "run_parallel": "parallel",
    "run_study": "run",
    "worker_options": "parallel",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
