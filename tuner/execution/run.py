"""Trials run on a prepared study: in this process, or ``--jobs`` at a time in worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import optuna

from tuner.execution.budget import Budget
from tuner.execution.cohorts import CohortRunner
from tuner.execution.parallel import run_parallel
from tuner.runtime import interrupt
from tuner.runtime.collector import LongLivedHeap
from tuner.search.stopping import AUTO_MAX, StopAtNoise
from tuner.storage import records
from tuner.storage.opening import written
from tuner.study.options import AUTO
from tuner.study.prepare import PreparedStudy, prepare_study


def run_study(
    prepared: PreparedStudy, trials: int | str | None, timeout: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    jobs: int = 1,
) -> None:
    """Run trials, ``jobs`` at a time (see :mod:`tuner.execution.parallel`), each process ``--fuse``
    at a time as one cohort (:mod:`tuner.execution.cohorts`). Failed trials (NaN loss,
    out of memory) are recorded and the study goes on; Ctrl-C ends the running trials as failed
    ("interrupted") and propagates. ``timeout``: no trial starts after it, and one whose next
    epoch would end after it stops (``Objective.deadline``). ``trials="auto"``: until
    :class:`~tuner.search.stopping.StopAtNoise` stops the study (the reason is stored on it).
    Afterwards only the weights the study keeps are left."""
    if timeout is not None:
        prepared.objective.deadline = time.time() + timeout
    stopper = None
    if prepared.study.user_attrs.get(records.STOPPED) is not None:
        prepared.study.set_user_attr(records.STOPPED, None)  # said of an earlier run's end, not this one's
    if trials == AUTO:
        stopper, trials = StopAtNoise(len(prepared.data.val_y)), AUTO_MAX
        callbacks = [*callbacks, stopper]
    assert trials is None or isinstance(trials, int)
    fuse = prepared.options.cohort_size if prepared.options is not None else 1  # prepare_study chose it
    try:
        with written(prepared.location):
            if prepared.options is not None and prepared.options.ray is not None:
                from tuner.execution.cluster import run_on_ray  # imports Ray: only for --ray

                if stopper is not None:
                    stopper.in_workers = True
                run_on_ray(prepared, trials, timeout, prepare=prepare_study, callbacks=callbacks,
                           closed=None if stopper is None else lambda: stopper.reason is not None)
            elif jobs > 1:
                assert prepared.options is not None, "prepare_study records the options workers need"
                if stopper is not None:
                    stopper.in_workers = True
                run_parallel(prepared.options, prepared.study, jobs, trials, timeout, prepare=prepare_study,
                             listener=prepared.objective.listener, callbacks=callbacks,
                             device_type=prepared.device.type,
                             closed=None if stopper is None else lambda: stopper.reason is not None)
            else:  # one ask/tell loop: a trial alone is a cohort of one
                with LongLivedHeap() as heap, interrupt.deferred():
                    runner = CohortRunner(prepared.study, prepared.objective, fuse,
                                          [prepared.objective.after_trial, *callbacks, heap, interrupt.stop_study])
                    runner.run(Budget(trials, prepared.objective.deadline))
    finally:
        if prepared.artifacts is not None:
            prepared.artifacts.tidy()
