"""An interrupted or killed trial goes on from its last saved epoch when the same command runs
again, and ends exactly as the same seeded trial run without a stop (CPU). Real processes, real
signals: Ctrl-C (SIGINT) and kill -9, a single process and a `--jobs 2` worker."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from helpers import TUNER, run_tuner, wait_for_trials

from tuner.storage import records

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

EPOCHS = 40


def args(*extra: str) -> list[str]:
    return ["optimize", "--plugin", "mlp-digits", "--trials", "1", "--epochs", str(EPOCHS), "--seed", "5",
            "--checkpoint-every", "0", "--pruner", "none", "--quiet", *extra]


def curve(trial: optuna.trial.FrozenTrial) -> list[float]:
    return [row["val_accuracy"] for row in trial.user_attrs[records.HISTORY]]


def trials_of(cwd: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{cwd / 'studies' / 'mlp-digits.db'}").trials


def stop_mid_trial(cwd: Path, how: signal.Signals, *extra: str) -> int:
    """Start the study, stop it once a few epochs are saved; the epoch its checkpoint holds."""
    env = {**os.environ, "TUNER_OFFLINE": "1", "TUNER_DATA_DIR": str(cwd / "data"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([TUNER, *args(*extra)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    wait_for_trials(cwd / "studies" / "mlp-digits.db", "mlp-digits",
                    lambda ts: ts and ts[0].user_attrs.get(records.CHECKPOINT, {}).get("epoch", 0) >= 3, proc=proc)
    os.killpg(proc.pid, how)
    proc.communicate(timeout=120)
    stopped = trials_of(cwd)[0]
    if how == signal.SIGKILL:  # a killed process writes nothing: the trial stays RUNNING until the next run
        assert stopped.state.name == "RUNNING" and records.FAIL_REASON not in stopped.user_attrs, stopped.state
    else:
        assert stopped.state.name == "FAIL" and stopped.user_attrs[records.FAIL_REASON] == records.INTERRUPTED
    saved = stopped.user_attrs[records.CHECKPOINT]["epoch"]
    assert 3 <= saved < EPOCHS, "the stop must land mid-trial"
    return saved


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[float]:
    cwd = tmp_path_factory.mktemp("whole")
    run_tuner(*args(), cwd=cwd, check=True)
    return curve(trials_of(cwd)[0])


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "kill-9"])
def test_a_stopped_trial_resumes_from_its_checkpoint_and_ends_as_if_never_stopped(uninterrupted, tmp_path, how):
    saved = stop_mid_trial(tmp_path, how)
    again = run_tuner(*args(), cwd=tmp_path, check=True)
    assert "Traceback" not in again.stderr
    trials = trials_of(tmp_path)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"], [t.state.name for t in trials]
    retry = trials[1]
    assert retry.user_attrs[records.RETRY_OF] == 0 and retry.user_attrs[records.REFERENCE]
    # the next run failed the killed trial at once, as killed (no reason: what the heartbeat leaves too)
    assert records.view(trials[0]).reason == (records.KILLED if how == signal.SIGKILL else records.INTERRUPTED)
    assert curve(retry) == uninterrupted, f"resumed from epoch {saved}"
    assert [retry.intermediate_values[e] for e in range(EPOCHS)] == uninterrupted
    assert not list((tmp_path / "studies" / "mlp-digits.artifacts").glob("checkpoint-*")), "checkpoints tidied"
    # reproduce re-trains it from scratch with the original's seed: the same curve again
    assert "reproduced" in run_tuner("reproduce", "studies/mlp-digits.db", "--trial", "1", cwd=tmp_path,
                                     check=True).stdout


def test_a_jobs_worker_trial_resumes_as_well(tmp_path_factory, tmp_path):
    whole = tmp_path_factory.mktemp("whole-jobs")
    run_tuner(*args("--jobs", "2"), cwd=whole, check=True)
    expected = curve(trials_of(whole)[0])
    stop_mid_trial(tmp_path, signal.SIGINT, "--jobs", "2")
    run_tuner(*args("--jobs", "2"), cwd=tmp_path, check=True)
    retry = next(t for t in trials_of(tmp_path) if t.user_attrs.get(records.RETRY_OF) == 0)
    assert retry.state.name == "COMPLETE" and curve(retry) == expected


def test_timeout_stops_a_trial_at_an_epoch_end_and_the_same_command_goes_on_from_it(tmp_path):
    """--timeout mid-trial: the trial whose next epoch would end after it stops at an epoch's
    end, saved; no other trial starts; the summary says so; the next run goes on from there."""
    epochs = ["--epochs", "80", "--checkpoint-every", "30", "--trials", "5"]  # the last flag given wins
    first = run_tuner(*args("--timeout", "1", *epochs), cwd=tmp_path, check=True)
    trials = trials_of(tmp_path)
    assert len(trials) == 1, "no trial may start after one was stopped by --timeout"
    stopped = trials[0]
    done = len(stopped.user_attrs[records.HISTORY])
    assert stopped.state.name == "FAIL" and stopped.user_attrs[records.FAIL_REASON] == records.TIMED_OUT
    assert 1 <= done < 80 and stopped.user_attrs[records.CHECKPOINT]["epoch"] == done
    assert f"--timeout: trial 0 stopped after epoch {done}" in first.stdout, first.stdout
    run_tuner(*args(*epochs[:4]), cwd=tmp_path, check=True)
    retry = trials_of(tmp_path)[1]
    assert retry.state.name == "COMPLETE" and retry.user_attrs[records.RETRY_OF] == 0
    assert [row["epoch"] for row in retry.user_attrs[records.HISTORY]] == list(range(1, 81))
    assert curve(retry)[:done] == curve(stopped)
