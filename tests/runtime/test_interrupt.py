"""A Ctrl-C or SIGTERM while trials run stops between batches, never inside a database write."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from tuner.execution import run_study
from tuner.runtime import interrupt
from tuner.study import OptimizeOptions, prepare_study

pytestmark = pytest.mark.reliability  # docs/reliability.md: every fault and bad input


class Terminated(KeyboardInterrupt):
    """What tuner.cli's SIGTERM handler raises."""


def test_a_signal_in_the_block_is_noted_and_raised_where_checked():
    def terminate(signum, frame):
        raise Terminated

    before = signal.signal(signal.SIGTERM, terminate)
    try:
        with pytest.raises(Terminated), interrupt.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the handler has run: nothing raised here
            assert isinstance(interrupt.pending(), Terminated)
            interrupt.check()
            raise AssertionError("check() did not raise")
        assert signal.getsignal(signal.SIGTERM) is terminate  # put back
        assert interrupt.pending() is None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_a_stop_noted_but_never_checked_is_raised_on_leaving_the_block():
    with pytest.raises(KeyboardInterrupt), interrupt.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_ctrl_c_is_raised_at_once():
    with pytest.raises(KeyboardInterrupt), interrupt.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # not reached: the second one raises in the sleep
        raise AssertionError("the second Ctrl-C was only noted")


def test_ctrl_c_inside_a_database_write_lets_the_write_finish_and_stores_the_trial(tmp_path: Path):
    """The fault that hung a --jobs worker for good: Ctrl-C between SQLite's BEGIN IMMEDIATE and
    its commit. Sent here for real, from inside the write of the first epoch's history."""
    options = OptimizeOptions(plugin="mlp-digits", db=str(tmp_path / "s.db"), epochs=5, trials=3,
                              data_dir=str(tmp_path / "data"))
    prepared = prepare_study(options)
    engine = prepared.study._storage._backend.engine
    sent = []

    @sqlalchemy.event.listens_for(engine, "before_cursor_execute")
    def ctrl_c_in_the_write(conn, cursor, statement, parameters, context, executemany):
        writes_history = "trial_user_attributes" in statement and "history" in str(parameters)
        if not sent and statement.lstrip().upper().startswith(("INSERT", "UPDATE")) and writes_history:
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal handler runs here, inside the transaction

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_study(prepared, 3, None)
    assert sent, "the write the signal was meant for never happened"
    assert time.monotonic() - started < 25  # not stuck on its own lock (busy timeout: 30 s)
    study = optuna.load_study(study_name=prepared.study.study_name, storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.trials[0]
    assert trial.state.name == "FAIL" and trial.user_attrs["fail_reason"] == "interrupted"
    assert len(trial.user_attrs["history"]) == 1  # the write the signal landed in was kept
    assert len(study.trials) == 1
