"""`tuner reproduce` re-trains a stored trial exactly; `--params` and `--space` pins feed `best`
back in. Through the real CLI, on the embedded digits."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
import pytest
from helpers import lenet_digits_db, new_study, one_error_line, run_tuner

from tuner.contract import Fixed
from tuner.plugins.registry import registry
from tuner.search import build_space, parse_entry, sample

STUDY_ARGS = ("optimize", "--plugin", "lenet-digits", "--trials", "5", "--epochs", "3", "--seed", "3",
              "--pruner-startup", "1", "--quiet")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return new_study(tmp_path_factory, "replay", *STUDY_ARGS)


db_of = lenet_digits_db


def trials_of(db: Path, name: str = "lenet-digits") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials


def set_trial_attr(db: Path, number: int, key: str, value) -> None:
    """Change a stored trial's user attribute in the file itself (Optuna refuses on a finished trial)."""
    with sqlite3.connect(db) as con:
        (trial_id,) = con.execute("SELECT trial_id FROM trials WHERE number = ?", (number,)).fetchone()
        if value is None:
            con.execute("DELETE FROM trial_user_attributes WHERE trial_id = ? AND key = ?", (trial_id, key))
        else:
            con.execute("UPDATE trial_user_attributes SET value_json = ? WHERE trial_id = ? AND key = ?",
                        (json.dumps(value), trial_id, key))


def reproduce(cwd: Path, *args: str):
    return run_tuner("reproduce", str(db_of(cwd)), *args, cwd=cwd)


@pytest.mark.slow
def test_every_trained_trial_reproduces_exactly_on_the_cpu(study_dir):
    trials = trials_of(db_of(study_dir))
    trained = [t for t in trials if t.user_attrs.get("history")]
    assert {t.state.name for t in trained} >= {"COMPLETE"} and len(trained) >= 3
    for trial in trained:
        assert trial.user_attrs["recipe"]["trial_seed"] == 3 * 100_003 + trial.number
        proc = reproduce(study_dir, "--trial", str(trial.number), "--json")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        result = json.loads(proc.stdout)
        stored = [row["val_accuracy"] for row in trial.user_attrs["history"]]
        assert result["trial"] == trial.number
        assert result["stored"] == stored
        assert result["reproduced"] == stored  # exactly: same seeds, same threads, same data split
        assert result["max_drift"] == 0.0
        assert result["environment"]["differs"] == []
        assert result["environment"]["now"]["threads"] == trial.user_attrs["recipe"]["threads"]


@pytest.mark.slow
def test_human_output_shows_each_epoch_the_drift_and_the_environment(study_dir):
    proc = reproduce(study_dir, "--trial", "0")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    assert all(r[1] == r[2] and r[3] == "+0.00" for r in rows)
    assert "largest drift 0.00 points (tolerance 0.5): reproduced" in proc.stdout
    assert "environment: same as stored" in proc.stdout


@pytest.mark.slow
def test_a_drift_beyond_the_tolerance_exits_1_and_names_the_environment_change(tmp_path):
    run_tuner(*STUDY_ARGS[:4], "2", *STUDY_ARGS[5:], cwd=tmp_path, check=True)
    db = db_of(tmp_path)
    # the last trial that trained two epochs or more (trial 1, a learning-rate step, may be pruned at 1)
    trial = [t for t in trials_of(db) if len(t.user_attrs.get("history", [])) >= 2][-1]
    number = str(trial.number)
    history = [dict(row) for row in trial.user_attrs["history"]]
    history[1]["val_accuracy"] -= 0.02  # as if that run had scored 2 points lower in epoch 2
    set_trial_attr(db, trial.number, "history", history)
    recipe = dict(trial.user_attrs["recipe"], torch_version="2.4.0")
    set_trial_attr(db, trial.number, "recipe", recipe)

    proc = reproduce(tmp_path, "--trial", number)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "largest drift 2.00 points (tolerance 0.5): not reproduced" in proc.stdout
    assert "environment differs: torch_version 2.4.0 -> " in proc.stdout
    assert "Traceback" not in proc.stderr
    assert reproduce(tmp_path, "--trial", number, "--tolerance", "2.5").returncode == 0
    result = json.loads(reproduce(tmp_path, "--trial", number, "--json").stdout)
    assert result["max_drift"] == pytest.approx(2.0)
    assert result["environment"]["differs"] == ["torch_version"]


@pytest.mark.slow
def test_a_trial_stored_before_recipes_is_rebuilt_from_the_provenance(tmp_path):
    run_tuner(*STUDY_ARGS[:4], "1", *STUDY_ARGS[5:], cwd=tmp_path, check=True)
    set_trial_attr(db_of(tmp_path), 0, "recipe", None)
    result = json.loads(reproduce(tmp_path, "--trial", "0", "--json").stdout)
    assert result["reproduced"] == result["stored"]


@pytest.mark.reliability
@pytest.mark.slow
def test_a_trial_that_is_not_there_or_did_not_train_is_one_line(study_dir):
    assert "no trial 99" in one_error_line(reproduce(study_dir, "--trial", "99"))
    assert "--tolerance" in one_error_line(reproduce(study_dir, "--trial", "0", "--tolerance", "-1"))


# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_best_json_params_train_as_one_trial_with_exactly_those_settings(study_dir, tmp_path):
    best = run_tuner("best", str(db_of(study_dir)), "--json", cwd=study_dir, check=True)
    (tmp_path / "best.json").write_text(best.stdout)
    proc = run_tuner("optimize", "--plugin", "lenet-digits", "--params", "best.json", "--epochs", "3",
                     "--quiet", cwd=tmp_path, check=True)
    trials = trials_of(db_of(tmp_path))
    assert len(trials) == 1 and not trials[0].user_attrs.get("reference")  # one trial, no reference
    params = json.loads(best.stdout)["params"]  # the settings that acted, and the epochs trained
    assert params.pop("epochs") == len(json.loads(best.stdout)["epochs"])
    assert trials[0].user_attrs["hparams"] == params
    assert trials[0].state.name == "COMPLETE", proc.stdout


@pytest.mark.reliability
@pytest.mark.slow
def test_params_from_a_plain_object_and_bad_files_are_one_line(tmp_path):
    def optimize(text: str):
        (tmp_path / "p.json").write_text(text)
        return run_tuner("optimize", "--plugin", "lenet-digits", "--params", "p.json", "--epochs", "1",
                         "--quiet", cwd=tmp_path)

    assert "not valid JSON" in one_error_line(optimize("{lr: 0.1"))
    assert "expected an object" in one_error_line(optimize("[1, 2]"))
    assert "unknown hyperparameter 'width'" in one_error_line(optimize('{"width": 3}'))
    assert "is not a number" in one_error_line(optimize('{"lr": "fast"}'))
    assert not (tmp_path / "studies").exists() or not any((tmp_path / "studies").glob("*.db"))
    assert optimize('{"lr": 0.02, "batch_size": 32, "optimizer": "sgd", "weight_decay": 0}').returncode == 0
    (trial,) = trials_of(db_of(tmp_path))
    assert {k: trial.user_attrs["hparams"][k] for k in ("lr", "batch_size", "optimizer", "weight_decay")} == {
        "lr": 0.02, "batch_size": 32, "optimizer": "sgd", "weight_decay": 0}


@pytest.mark.slow
def test_space_pins_values_that_switch_a_setting_off(tmp_path):
    run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "2", "--epochs", "1", "--space", "dropout=none",
              "--space", "weight_decay=0", "--quiet", cwd=tmp_path, check=True)
    for trial in trials_of(db_of(tmp_path))[1:]:  # trial 0 is the reference
        assert trial.user_attrs["hparams"]["weight_decay"] == 0
        assert trial.user_attrs["hparams"].get("dropout") is None  # no dropout: none stored
        assert "weight_decay" not in trial.params and "weight_decay_is_zero" not in trial.params


def test_dropout_none_pins_a_model_that_has_dropout():
    _, param = parse_entry("dropout=none")
    assert param == Fixed(None)
    space = build_space(registry().architecture("alexnet"), {"dropout": param})
    assert space["dropout"] == Fixed(None)
    assert sample(optuna.create_study().ask(), space)["dropout"] is None
    for bad in ("lr=none", "batch_size=null"):
        with pytest.raises(Exception, match="cannot be none"):
            parse_entry(bad)


@pytest.mark.slow
@pytest.mark.reliability
def test_reproduce_and_export_use_the_data_folder_the_study_was_made_with(tmp_path):
    from helpers import write_mnist

    data = write_mnist(tmp_path / "where-the-data-was", train=60, test=20)
    made = tmp_path / "made"
    made.mkdir()
    run_tuner("optimize", "--plugin", "mlp-mnist", "--trials", "2", "--epochs", "1", "--quiet",
              "--data-dir", str(data), cwd=made, check=True)
    db = made / "studies" / "mlp-mnist.db"
    elsewhere = tmp_path / "elsewhere"  # another folder, TUNER_DATA_DIR pointing at nothing
    elsewhere.mkdir()
    proc = run_tuner("reproduce", str(db), "--trial", "0", cwd=elsewhere, check=True)
    assert "reproduced" in proc.stdout
    run_tuner("export", str(db), "--format", "torchscript", "-o", str(elsewhere / "m"), cwd=elsewhere, check=True)
    data.rename(tmp_path / "moved")
    for args in (("reproduce", str(db), "--trial", "0"), ("export", str(db), "--format", "torchscript", "-o",
                                                          str(elsewhere / "m2"))):
        line = one_error_line(run_tuner(*args, cwd=elsewhere))
        assert str(data) in line and "not there any more" in line and "--data-dir" in line, line
    proc = run_tuner("reproduce", str(db), "--trial", "0", "--data-dir", str(tmp_path / "moved"), cwd=elsewhere,
                     check=True)
    assert "reproduced" in proc.stdout


@pytest.mark.slow
@pytest.mark.reliability
def test_a_trial_whose_plugin_is_gone_says_which_plugin_and_prints_nothing_else(demo_plugins, tmp_path):
    from helpers import pythonpath

    run_tuner("optimize", "--plugin", "tinynet-digits8", "--trials", "1", "--epochs", "1", "--quiet",
              cwd=tmp_path, env=pythonpath(demo_plugins), check=True)
    db = tmp_path / "studies" / "tinynet-digits8.db"
    proc = run_tuner("reproduce", str(db), "--trial", "0", cwd=tmp_path)  # the package is not on the path now
    line = one_error_line(proc)
    assert "tinynet-digits8" in line and "not installed" in line and "tuner-demo-plugins" in line, line
    assert "did you mean" not in line and proc.stdout == ""
