"""The live view's arithmetic: a running trial's pace and time left, the study's time left, and
lengths of time as people read them."""

from __future__ import annotations

import io

import optuna
import pytest
from rich.console import Console

from tuner.cli import progress
from tuner.planning import duration


@pytest.mark.parametrize(("seconds", "shown"), [(0.012, "0.012 s"), (1.44, "1.4 s"), (42, "42 s"),
                                                (12 * 60, "12 min"), (3.5 * 3600, "3.5 h"),
                                                (3 * 86400, "3.0 days")])
def test_durations_read_as_people_say_them(seconds, shown):
    assert duration(seconds) == shown


def finished(number: int, value: float) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(value=value, params={}, distributions={})
    trial.number = number
    return trial


def test_time_left_from_the_measured_cost_then_from_each_trials_pace(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    view = progress.StudyProgress(Console(file=io.StringIO()), 4, live=False, quiet=False, jobs=2)
    assert view.study_left() is None  # nothing measured yet
    view.estimated(60.0)
    assert view.study_left() == 4 * 60 / 2  # four trials, two at a time

    view.trial_started(0, {}, True)
    assert view.study_left() == 60 + 3 * 60 / 2  # still building its model: a whole trial
    view.batch_done(0, 1, 2, 0, 10, 0)  # epoch 1 of 2 starts: its bar says the measured cost left
    assert view.progress.tasks[view.running[0].bar].fields["left"] == "~60 s left"
    clock[0] = 110.0
    view.batch_done(0, 1, 2, 5, 10, 320)  # a quarter of the trial in 10 s
    assert view.running[0].rate == 32.0
    assert view.running[0].left() == 30.0
    assert view.study_left() == 30 + 3 * 40 / 2  # the running trial's pace stands for the others

    clock[0] = 150.0
    view(optuna.create_study(), finished(0, 0.9))  # took 50 s, model building included
    assert view.durations == [50.0] and view.best == 0.9
    assert view.study_left() == 3 * 50 / 2
    assert "trial 0" in view.console.file.getvalue()  # off a terminal: a line per finished trial
    view.trial_started(1, {}, False, "10.0.0.7 cuda:1")  # a --ray trial: its node and device
    assert view.progress.tasks[view.running[1].bar].description == "trial 1 on 10.0.0.7 cuda:1"
