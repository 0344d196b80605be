"""`--mlflow URI`: one MLflow run per trial with its hyperparameters and per-epoch metrics, the
test accuracy and the best model when the study ends, read back through MLflow's own client; a
store that cannot be used is one line in seconds, with no password and nothing left behind."""

from __future__ import annotations

import json
import time

import optuna
import pytest
from helpers import immutable, lenet_digits_db, need_extra, one_error_line, run_tuner

import tuner
from tuner.runtime import free_port


@pytest.mark.slow
def test_each_trial_is_one_mlflow_run_with_its_epochs(tmp_path, monkeypatch):
    need_extra("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    store = f"file:{tmp_path / 'mlruns'}"
    env = {"MLFLOW_ALLOW_FILE_STORE": "true"}  # MLflow 3 keeps the file store behind this switch
    run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "4", "--epochs", "3", "--pruner-startup", "1",
              "--mlflow", store, "--quiet", cwd=tmp_path, env=env, check=True)
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{lenet_digits_db(tmp_path)}")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("lenet-digits")
    runs = {int(r.data.tags["tuner.trial"]): r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == [t.number for t in study.trials]
    for trial in study.trials:
        run = runs[trial.number]
        assert run.info.run_name == f"trial {trial.number}"
        assert run.data.tags["tuner.state"] == trial.state.name.lower()
        assert run.data.tags["tuner.plugin"] == "lenet-digits"
        assert run.data.params["lr"] == str(trial.user_attrs["hparams"]["lr"])
        assert "weight_decay_is_zero" not in run.data.params
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (row["epoch"], row["val_accuracy"]) for row in trial.user_attrs["history"]]
    assert runs[0].data.tags["tuner.reference"] == "true"


@pytest.mark.slow
def test_the_runs_carry_test_accuracy_the_best_model_and_a_pruned_status(tmp_path, monkeypatch):
    need_extra("mlflow", "mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow keeps a sqlite store's artifacts beside the command
    monkeypatch.setenv("TUNER_OFFLINE", "1")
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    summary = tuner.optimize("lenet-digits", trials=6, epochs=3, pruner_startup=1, mlflow=store,
                             db=str(tmp_path / "s.db"))  # the Python API takes the same option
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("lenet-digits")
    runs = {int(r.data.tags["tuner.trial"]): r for r in client.search_runs([experiment.experiment_id])}
    best = runs[summary["trial"]]
    assert best.data.tags["tuner.best"] == "true"
    assert best.data.metrics["test_accuracy"] == pytest.approx(summary["test_accuracy"])
    if summary["reference_trial"] != summary["trial"]:
        assert runs[summary["reference_trial"]].data.metrics["test_accuracy"] == \
            pytest.approx(summary["reference_test_accuracy"])
    assert best.data.params["epochs"] == str(len(summary["epochs"]))
    assert "momentum" not in best.data.params or best.data.params["optimizer"] == "sgd"
    files = {a.path for a in client.list_artifacts(best.info.run_id, "model")}
    assert files == {"model/model.json", "model/weights.pt"}
    with open(client.download_artifacts(best.info.run_id, "model/model.json", str(tmp_path))) as f:
        card = json.load(f)
    assert card["trial"] == summary["trial"] and card["params"] == summary["params"]
    for number, run in runs.items():
        state = run.data.tags["tuner.state"]
        assert run.info.status == {"complete": "FINISHED", "pruned": "KILLED", "fail": "FAILED"}[state], number
        assert run.data.params["epochs"] == str(len(client.get_metric_history(run.info.run_id, "val_accuracy")))


@pytest.mark.slow
def test_an_mlflow_store_that_cannot_be_used_is_one_line_before_any_trial(tmp_path):
    need_extra("mlflow", "mlflow")
    (tmp_path / "a-file").write_text("x")
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--epochs", "1",
                                    "--mlflow", f"sqlite:///{tmp_path / 'a-file' / 'm.db'}", cwd=tmp_path))
    assert "--mlflow" in line and str(tmp_path / "a-file") in line
    assert not lenet_digits_db(tmp_path).exists()


@pytest.mark.reliability
@pytest.mark.slow
def test_mlflow_mistakes_are_one_line_in_seconds_with_no_password_and_nothing_made(tmp_path):
    need_extra("mlflow", "mlflow")
    port = free_port()  # a port nobody listens on
    started = time.monotonic()
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--epochs", "1",
                                    "--mlflow", f"http://me:s3cret-pw@127.0.0.1:{port}", cwd=tmp_path))
    assert time.monotonic() - started < 60, "an unreachable server must be refused in seconds"
    assert "s3cret-pw" not in line and "no MLflow server answers" in line and f"127.0.0.1:{port}" in line
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--mlflow",
                                    f"file:{tmp_path / 'mlruns'}", cwd=tmp_path, env={"MLFLOW_ALLOW_FILE_STORE": ""}))
    assert "MLFLOW_ALLOW_FILE_STORE=true" in line and "sqlite:///" in line and str(tmp_path / "mlruns") in line
    locked = tmp_path / "locked.db"
    locked.write_bytes(b"")
    with immutable(locked):
        started = time.monotonic()
        line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--mlflow",
                                        f"sqlite:///{locked}", cwd=tmp_path))
        assert f"{locked} is read-only" in line and time.monotonic() - started < 60
    # a mistake later on the command line: nothing made, not even MLflow's store
    proc = run_tuner("optimize", "--plugin", "lenet-digits", "--mlflow", f"sqlite:///{tmp_path / 'm.db'}",
                     "--space", "lr=abc", cwd=tmp_path)
    assert "--space" in one_error_line(proc)
    assert not (tmp_path / "m.db").exists() and not lenet_digits_db(tmp_path).exists()
    assert not (tmp_path / "mlruns").exists()
