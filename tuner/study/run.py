"""Trials run on a prepared study: in this process, or ``--jobs`` at a time in worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import optuna

from tuner.errors import TrialFailed
from tuner.runtime import interrupt
from tuner.runtime.collector import LongLivedHeap
from tuner.storage.opening import written
from tuner.study.parallel import run_parallel
from tuner.study.prepare import PreparedStudy, prepare_study


def run_study(
    prepared: PreparedStudy, trials: int | None, timeout: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    jobs: int = 1,
) -> None:
    """Run trials, ``jobs`` at a time (see :mod:`tuner.study.parallel`). Failed trials (NaN loss,
    out of memory) are recorded and the study goes on; Ctrl-C ends the running trials as failed
    ("interrupted") and propagates. ``timeout``: no trial starts after it, and one whose next
    epoch would end after it stops (``Objective.deadline``). Afterwards only the weights the
    study keeps are left."""
    if timeout is not None:
        prepared.objective.deadline = time.time() + timeout
    try:
        with written(prepared.location):
            if jobs > 1:
                assert prepared.options is not None, "prepare_study records the options workers need"
                run_parallel(prepared.options, prepared.study, jobs, trials, timeout, prepare=prepare_study,
                             listener=prepared.objective.listener, callbacks=callbacks,
                             device_type=prepared.device.type)
                return
            with LongLivedHeap() as heap, interrupt.deferred():
                prepared.study.optimize(
                    prepared.objective, n_trials=trials, timeout=timeout, catch=(TrialFailed,),
                    callbacks=[prepared.objective.after_trial, *callbacks, heap, interrupt.stop_study,
                               prepared.objective.stop_at_deadline],
                    gc_after_trial=False,
                )
    finally:
        if prepared.artifacts is not None:
            prepared.artifacts.tidy()
