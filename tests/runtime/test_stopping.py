"""Stopping a study from outside: SIGTERM (a scheduler, `kill`) and a process killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from helpers import TUNER, pythonpath, run_tuner, wait_for_trials

from tuner.execution import run_study
from tuner.storage import opening as study_module
from tuner.study import OptimizeOptions, prepare_study

pytestmark = pytest.mark.reliability  # docs/reliability.md: every fault and bad input

ARGS = ["optimize", "--plugin", "mlp-digits", "--trials", "50", "--quiet"]


def load(db: Path) -> optuna.Study:
    return optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}")


def start_and_wait_for_trial_zero(tmp_path: Path, epochs: int) -> subprocess.Popen:
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([TUNER, *ARGS, "--epochs", str(epochs)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # until trial 0 (the reference) has an epoch stored
    wait_for_trials(tmp_path / "studies" / "mlp-digits.db", "mlp-digits",
                    lambda trials: trials and trials[0].user_attrs.get("history"), timeout=120, proc=proc)
    return proc


@pytest.mark.slow
def test_ctrl_c_during_a_step_of_seconds_stops_within_3_s(tmp_path, slow_plugins):
    """slowstep's step takes seconds on a CPU, most of them inside ``loss.backward()``; a Ctrl-C
    waited for the step's end before (35-45 s for AlexNet at a batch of 1,000)."""
    mark = tmp_path / "steps"
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "TUNER_SLOW_MARK": str(mark),
           **pythonpath(slow_plugins)}
    proc = subprocess.Popen([TUNER, "optimize", "--plugin", "slowstep-digits", "--trials", "1", "--epochs", "2",
                             "--quiet"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    db = tmp_path / "studies" / "slowstep-digits.db"
    wait_for_trials(db, "slowstep-digits", lambda trials: trials and trials[0].state.name == "RUNNING",
                    timeout=180, proc=proc)
    deadline = time.monotonic() + 120
    while not mark.exists():  # the first training step has begun (a guessed delay missed it on a fast CPU)
        assert proc.poll() is None and time.monotonic() < deadline, "the first step never began"
        time.sleep(0.02)
    time.sleep(0.5)  # inside the first step: its forward and backward take seconds
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr
    trial = optuna.load_study(study_name="slowstep-digits", storage=f"sqlite:///{db}").trials[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "interrupted"
    assert not trial.user_attrs.get("history"), "the signal was meant to land inside the first epoch"
    assert took < 3, f"Ctrl-C took {took:.1f} s to stop the run"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])  # kill, a closed terminal
def test_sigterm_and_sighup_stop_like_ctrl_c(tmp_path, signum):
    proc = start_and_wait_for_trial_zero(tmp_path, epochs=300)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and "interrupted: the running trial is stored as failed" in stderr
    assert "Top" in stdout  # the summary still prints
    trial = load(tmp_path / "studies" / "mlp-digits.db").trials[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "interrupted"


@pytest.mark.slow
def test_a_killed_trial_is_failed_as_killed_and_the_reference_runs_again(tmp_path, monkeypatch):
    proc = start_and_wait_for_trial_zero(tmp_path, epochs=100)  # a few seconds of training
    proc.kill()  # SIGKILL: nothing in the process runs any more
    proc.communicate(timeout=60)
    db = tmp_path / "studies" / "mlp-digits.db"
    assert load(db).trials[0].state.name == "RUNNING"  # what the process left behind

    # The next run fails it once its heartbeat is older than the grace period (60 s; 1 s here).
    monkeypatch.setattr(study_module, "GRACE_S", 1)
    time.sleep(2.5)  # SQLite's clock has whole seconds
    options = OptimizeOptions(plugin="mlp-digits", db=str(db), epochs=100, trials=1,
                              data_dir=str(tmp_path / "data"))
    run_study(prepare_study(options), 1, None)
    trials = load(db).trials
    assert trials[0].state.name == "FAIL" and "fail_reason" not in trials[0].user_attrs
    assert trials[1].user_attrs.get("reference") and trials[1].state.name == "COMPLETE"  # the baseline again
    assert [t.state.name for t in trials if t.state.name == "RUNNING"] == []

    shown = run_tuner("trials", str(db), cwd=tmp_path, check=True).stdout
    assert "killed" in shown
    summary = run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout
    assert '"reference_trial": 1' in summary


@pytest.mark.slow
def test_a_killed_run_resumed_at_once_fails_its_trial_without_waiting_for_the_heartbeat(tmp_path):
    """Same machine, process gone: the resume knows at once (tuner.runtime.liveness), no 60 s grace."""
    proc = start_and_wait_for_trial_zero(tmp_path, epochs=100)
    proc.kill()
    proc.communicate(timeout=60)
    db = tmp_path / "studies" / "mlp-digits.db"
    assert load(db).trials[0].state.name == "RUNNING"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--epochs", "100", "--quiet", cwd=tmp_path,
              check=True)
    trials = load(db).trials
    assert trials[0].state.name == "FAIL" and trials[0].user_attrs["process"]["pid"] == proc.pid
    assert trials[1].user_attrs.get("reference") and trials[1].state.name == "COMPLETE"  # the baseline again
    assert "RUNNING" not in [t.state.name for t in trials]
    assert "killed" in run_tuner("trials", str(db), cwd=tmp_path, check=True).stdout


def test_only_a_process_of_this_host_that_is_gone_is_known_dead():
    from tuner.runtime import liveness as proc

    me = proc.identity()
    assert not proc.known_dead(me)
    child = subprocess.Popen(["sleep", "30"])
    record = {**me, "pid": child.pid, "started": proc._started(child.pid)}
    assert not proc.known_dead(record)
    child.kill()
    deadline = time.time() + 10
    while not proc.known_dead(record) and time.time() < deadline:  # the kernel takes a moment
        time.sleep(0.01)
    assert proc.known_dead(record)  # killed, not yet reaped (a zombie runs nothing)
    child.wait()
    assert proc.known_dead(record)
    assert not proc.known_dead({**record, "host": "another-machine/boot/ns"})  # the heartbeat decides there
    assert proc.known_dead({**me, "started": me["started"] + 1})  # the pid now belongs to another process
    assert not proc.known_dead(None) and not proc.known_dead({"host": me["host"], "pid": "x"})
