"""Log each finished trial to MLflow as one run: its hyperparameters, its per-epoch metrics,
its state and why it stopped (``tuner optimize --mlflow URI``; extra ``tuner[mlflow]``).

MLflow's client is used directly rather than optuna-integration's ``MLflowCallback``, which
logs Optuna's internal parameter names (``weight_decay_is_zero``) and only the final value.
A run is written when its trial is stored (an Optuna callback, in the main process also for
``--jobs``), so a trial that was interrupted is logged as KILLED with what it trained.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.after.summary import trained_params
from tuner.errors import UsageError, message_line
from tuner.storage.location import hide_password, scrub
from tuner.storage.records import view

_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED", TrialState.FAIL: "FAILED"}
METRICS = ("val_accuracy", "val_loss", "train_loss", "lr")


def loggers(uri: str | None, study_name: str, plugin: str) -> list[MlflowLogger]:
    """``--mlflow``'s logger, made before the study is touched (a store MLflow refuses leaves
    nothing behind), or none without a URI."""
    return [MlflowLogger(uri, study_name, {"tuner.plugin": plugin})] if uri else []


class MlflowLogger:
    """An Optuna callback: one MLflow run per finished trial, in the experiment named after the study.

    Args:
        uri: MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``, ``file:./mlruns``).
        study_name: The experiment's name.
        tags: Tags on every run (plugin, storage shown without password).
    """

    def __init__(self, uri: str, study_name: str, tags: dict[str, str] | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError("--mlflow needs MLflow: pip install 'tuner[mlflow]'") from None
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines would interleave the progress
        try:
            self.client = MlflowClient(tracking_uri=uri)
            found = self.client.get_experiment_by_name(study_name)
            self.experiment = found.experiment_id if found else self.client.create_experiment(study_name)
        except Exception as e:  # MlflowException, OSError, a server that does not answer
            why = scrub(message_line(e), uri)
            raise UsageError(f"--mlflow {hide_password(uri)}: MLflow refused it ({why})") from None
        self.tags = dict(tags or {})

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.log(trial)

    def log(self, trial: FrozenTrial) -> str:
        """Write ``trial`` as a run; returns the run id."""
        from mlflow.entities import Metric, Param

        record = view(trial)
        tags = {**self.tags, "tuner.trial": str(trial.number), "tuner.state": record.state.lower(),
                "tuner.reference": str(record.reference).lower()}
        if record.reason:
            tags["tuner.reason"] = str(record.reason)[:500]
        run = self.client.create_run(self.experiment, run_name=f"trial {trial.number}",
                                     tags=tags, start_time=_ms(record.started))
        params = [Param(k, str(v)) for k, v in trained_params(record).items()]
        now = _ms(record.completed) or int(time.time() * 1000)
        metrics = [Metric(name, float(row[name]), now, int(row["epoch"]))
                   for row in record.history for name in METRICS if row.get(name) is not None]
        if record.value is not None:
            metrics.append(Metric("best_val_accuracy", float(record.value), now, record.epochs_run))
        for start in range(0, max(len(metrics), 1), 900):  # MLflow takes at most 1,000 entries per batch
            self.client.log_batch(run.info.run_id, metrics=metrics[start : start + 900],
                                  params=params if start == 0 else [])
        self.client.set_terminated(run.info.run_id, status=_STATUS.get(trial.state, "KILLED"), end_time=now)
        return run.info.run_id


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None
