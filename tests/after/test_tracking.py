"""`--mlflow URI`: one MLflow run per trial with its hyperparameters and per-epoch metrics,
read back through MLflow's own client from a local file store."""

from __future__ import annotations

import optuna
import pytest
from helpers import lenet_digits_db, need_extra, one_error_line, run_tuner


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
def test_an_mlflow_store_that_cannot_be_used_is_one_line_before_any_trial(tmp_path):
    need_extra("mlflow", "mlflow")
    (tmp_path / "a-file").write_text("x")
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--epochs", "1",
                                    "--mlflow", f"sqlite:///{tmp_path / 'a-file' / 'm.db'}", cwd=tmp_path))
    assert "--mlflow" in line and "MLflow refused it" in line
    assert not lenet_digits_db(tmp_path).exists()
