"""The Python API: the example docs/python-api.md shows runs as written and agrees with the CLI."""

from __future__ import annotations

import json
import logging
import re

import pytest
from helpers import ROOT, run_tuner

import tuner
from tuner.errors import StudyError, UsageError


@pytest.mark.slow
def test_the_documented_example_runs_and_returns_what_the_cli_prints(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNER_OFFLINE", "1")
    example = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "python-api.md").read_text(), re.S).group(1)
    with caplog.at_level(logging.INFO):
        exec(compile(example, "docs/python-api.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "vs reference" in printed and "points" in printed
    assert not [r for r in caplog.records if r.name.startswith("optuna")], "Optuna's INFO lines must stay quiet"
    cli = json.loads(run_tuner("best", "studies/api.db", "--json", cwd=tmp_path, check=True).stdout)
    assert tuner.best("studies/api.db") == cli
    listed = json.loads(run_tuner("trials", "studies/api.db", "--json", "--state", "pruned", "--sort", "value",
                                  cwd=tmp_path, check=True).stdout)
    assert tuner.trials("studies/api.db", state=["pruned"], sort="value") == listed
    assert tuner.trials(tmp_path / "studies" / "api.db", state="pruned", sort="value") == listed  # Path, one state
    assert tuner.best(tmp_path / "studies" / "api.db") == cli


def test_mistakes_raise_the_clis_one_line(tmp_path):
    with pytest.raises(StudyError, match="does not exist"):
        tuner.best(str(tmp_path / "missing.db"))
    with pytest.raises(UsageError, match="state 'done'"):
        tuner.trials(str(tmp_path / "missing.db"), state=["done"])
    with pytest.raises(UsageError, match=r"^epochs must be at least 1"):  # the argument, not the CLI's flag
        tuner.optimize("lenet-digits", epochs=0, db=tmp_path / "x.db")
    with pytest.raises(UsageError, match=r"^max_train must be at least 2"):
        tuner.optimize("lenet-digits", max_train=1, db=tmp_path / "x.db")
    with pytest.raises(UsageError, match=r"unknown option.*epoch"):
        tuner.optimize("lenet-digits", epoch=3)
    assert not (tmp_path / "x.db").exists()


def test_a_run_checks_its_options_and_loads_its_plugins_once(tmp_path, monkeypatch):
    """One session for the CLI and tuner.optimize: the options are checked once, before anything is
    made, and preparing the study uses what that check found instead of checking them again."""
    import tuner.study.prepare as prepare

    loaded = []
    real = prepare.load_pair
    monkeypatch.setattr(prepare, "load_pair", lambda name: loaded.append(name) or real(name))
    monkeypatch.setenv("TUNER_OFFLINE", "1")
    found = tuner.optimize("mlp-digits", 1, epochs=1, db=tmp_path / "once.db")
    assert loaded == ["mlp-digits"]
    assert found["trial"] == 0 and found["test_accuracy"] is not None  # the run was finished too


def test_preparing_returns_the_plan_and_leaves_the_options_as_given(tmp_path, monkeypatch):
    """--jobs auto and --fuse become numbers on the prepared study; the options the caller made
    (and would run again) still say what the person asked for."""
    from tuner.session import Session
    from tuner.study import OptimizeOptions

    monkeypatch.setenv("TUNER_OFFLINE", "1")
    asked = OptimizeOptions(plugin="mlp-digits", trials=2, epochs=1, db=str(tmp_path / "plan.db"), jobs="auto")
    prepared = Session(asked).prepare()
    assert asked.jobs == "auto" and asked.fuse is None
    assert isinstance(prepared.options.jobs, int) and prepared.options.jobs >= 1 and prepared.options.fuse == 1
    assert prepared.jobs_plan is not None and prepared.jobs_plan.jobs == prepared.options.jobs
