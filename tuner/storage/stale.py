"""Trials whose process died: failed at once when the process is known gone, or by Optuna's
heartbeat after its grace; a killed reference is queued again, since every study keeps its baseline."""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.runtime.liveness import known_dead
from tuner.storage import records

# A running trial records a heartbeat this often; one silent for GRACE_S is failed as killed
# (SIGKILL, out of host memory, a lost machine) by the next trial any process starts on the
# study. One write per HEARTBEAT_S, whatever the epoch length; its cost: docs/benchmarks.md.
HEARTBEAT_S = 15
GRACE_S = 60


def killed_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna's heartbeat has failed a trial whose heartbeat stopped. One that saved a checkpoint
    gets its retry; a killed reference without one is queued again, as an interrupted one is."""
    if queue_retries(study, only=trial.number):
        return
    if not trial.user_attrs.get(records.REFERENCE):
        return
    others = [t for t in records.references(study) if t.number != trial.number]
    if all(t.state == TrialState.FAIL for t in others):
        study.enqueue_trial(trial.params, user_attrs={records.REFERENCE: True})


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the running trials whose process is known to be gone (same host, pid not alive), or
    whose ``--ray`` driver is (its actors went with it), at once instead of after the heartbeat's
    grace; the numbers failed."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        process = trial.user_attrs.get(records.PROCESS)
        driver = process.get("driver") if isinstance(process, dict) else None
        if not (known_dead(process) or known_dead(driver)):
            continue
        if _fail(study, trial, None):  # no fail_reason, as for a trial the heartbeat fails: shown as KILLED
            failed.append(trial.number)
    return failed


def _fail(study: optuna.Study, trial: FrozenTrial, reason: str | None) -> bool:
    """Fail another process's running trial (with ``reason``, when given); False when another
    process failed it first. Private API: Optuna has no public call to finish another process's
    trial (its own heartbeat uses this one). Pinned by tests/test_optuna_private.py."""
    try:
        if reason is not None:
            study._storage.set_trial_user_attr(trial._trial_id, records.FAIL_REASON, reason)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def fail_trials_of(study: optuna.Study, process: dict, reason: str) -> list[int]:
    """Fail the running trials of ``process`` (a ``--ray`` actor that died with its node) with
    ``reason``; the numbers failed."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = trial.user_attrs.get(records.PROCESS)
        if not isinstance(record, dict) or any(record.get(k) != process.get(k) for k in ("host", "pid", "started")):
            continue
        if _fail(study, trial, reason):
            failed.append(trial.number)
    return failed


def queue_retries(study: optuna.Study, only: int | None = None) -> list[int]:
    """Queue a retry of every interrupted, killed or timed-out trial that saved a checkpoint and has none
    yet (``records.RETRY_OF``): it goes on from the saved epoch with the same hyperparameters.
    ``only``: that trial alone. The numbers retried."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(records.RETRY_OF) for t in trials}
    queued = []
    for t in trials:
        reason = t.user_attrs.get(records.FAIL_REASON)
        if (t.state != TrialState.FAIL or reason not in (None, records.INTERRUPTED, records.TIMED_OUT)
                or t.number in retried or records.CHECKPOINT not in t.user_attrs
                or (only is not None and t.number != only)):
            continue
        marks: dict[str, object] = {records.RETRY_OF: t.number}
        if t.user_attrs.get(records.REFERENCE):
            marks[records.REFERENCE] = True
        study.enqueue_trial(t.params, user_attrs=marks)
        queued.append(t.number)
    return queued
