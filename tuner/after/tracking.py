"""Log each finished trial to MLflow as one run: its hyperparameters, its per-epoch metrics,
its state and why it stopped (``tuner optimize --mlflow URI``; extra ``tuner[mlflow]``); when the
study ends, the test accuracy on the best and the reference run and the best model as an artifact.

MLflow's client is used directly rather than optuna-integration's ``MLflowCallback``, which
logs Optuna's internal parameter names (``weight_decay_is_zero``) and only the final value.
A run is written when its trial is stored (an Optuna callback, in the main process also for
``--jobs``), so a trial that was interrupted is logged as KILLED with what it trained.
The store is checked before anything is created, in seconds: a server that does not answer,
a folder that cannot be written and MLflow 3's refusal of ``file:`` stores are one line each.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from tuner.after.summary import trained_params
from tuner.errors import UsageError, message_line
from tuner.storage.location import hide_password, scrub
from tuner.storage.records import view
from tuner.storage.sqlite import folder_writable

#: MLflow's run status per trial state: a pruned run is told apart from a finished one in the UI.
_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
METRICS = ("val_accuracy", "val_loss", "train_loss", "lr")
REACH_S = 5  # a server has this long to answer before --mlflow is refused


def loggers(uri: str | None, study_name: str, plugin: str) -> list[MlflowLogger]:
    """``--mlflow``'s logger, made before the study is touched (a store MLflow refuses leaves
    nothing behind), or none without a URI."""
    return [MlflowLogger(uri, study_name, {"tuner.plugin": plugin})] if uri else []


def finish_tracking(trackers: list[MlflowLogger], study: optuna.Study, db_path: Path | None) -> None:
    """The study's ending told to each tracker (test accuracy, the best model)."""
    from tuner.after.summary import best_summary
    from tuner.errors import StudyError

    if not trackers:
        return
    try:
        summary = best_summary(study, db_path)
    except StudyError:  # no completed trial: nothing to add
        return
    for tracker in trackers:
        tracker.finish(summary)


def check_store(uri: str) -> None:
    """Refuse, in one line and in seconds, a store MLflow would refuse slowly or not at all."""
    shown = hide_password(uri)
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").lower() not in ("1", "true"):
        raise UsageError(f"--mlflow {shown}: MLflow 3 no longer writes to file stores; give a database store such "
                         "as --mlflow sqlite:///mlflow.db, or set MLFLOW_ALLOW_FILE_STORE=true to use this one")
    if parsed.scheme == "sqlite":
        path = Path(uri.removeprefix("sqlite:///")).absolute()
        if not path.parent.is_dir() or not folder_writable(path.parent):
            raise UsageError(f"--mlflow {shown}: cannot write in {path.parent} (not a folder you can write); give "
                             "a sqlite:/// path in one")
        if path.exists() and not _writable_file(path):
            raise UsageError(f"--mlflow {shown}: {path} is read-only; make it writable or give another sqlite:/// "
                             "path")
    if parsed.scheme in ("http", "https"):
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            socket.create_connection((parsed.hostname or "", port), timeout=REACH_S).close()
        except OSError as e:
            raise UsageError(f"--mlflow {shown}: no MLflow server answers at {parsed.hostname}:{port} "
                             f"({e.strerror or type(e).__name__}); start it, or check the address") from None


def _writable_file(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND))  # nothing written; refused if read-only
        return True
    except OSError:
        return False


class MlflowLogger:
    """An Optuna callback: one MLflow run per finished trial, in the experiment named after the study.

    Args:
        uri: MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``).
        study_name: The experiment's name.
        tags: Tags on every run (plugin, storage shown without password).
    """

    def __init__(self, uri: str, study_name: str, tags: dict[str, str] | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise UsageError("--mlflow needs MLflow: pip install 'tuner[mlflow]'") from None
        check_store(uri)
        # MLflow retries a silent server for minutes and logs its migrations: bounded, and quiet.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REACH_S))
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self.uri, self.runs = uri, {}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
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
        self.client.set_terminated(run.info.run_id, status=_STATUS.get(record.state, "KILLED"), end_time=now)
        self.runs[trial.number] = run.info.run_id
        return run.info.run_id

    def finish(self, summary: dict[str, Any]) -> None:
        """When the study ends: test accuracy on the best and the reference run, the best run
        tagged, and its weights with a model.json (what it is, what it takes, how good) as artifacts."""
        for number, key in ((summary["trial"], "test_accuracy"),
                            (summary["reference_trial"], "reference_test_accuracy")):
            run = self.runs.get(number)
            if run is not None and summary.get(key) is not None:
                self.client.log_metric(run, "test_accuracy", float(summary[key]))
        run = self.runs.get(summary["trial"])
        if run is None:
            return
        self.client.set_tag(run, "tuner.best", "true")
        card = {k: summary[k] for k in ("study", "plugin", "trial", "params", "value", "test_accuracy",
                                        "reference_trial", "reference_value", "reference_test_accuracy")}
        card["weights"] = "weights.pt: torch.load(path, weights_only=True), a state_dict for the plugin's build()"
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "model.json").write_text(json.dumps(card, indent=2) + "\n")
            self.client.log_artifact(run, str(Path(folder) / "model.json"), "model")
            if summary.get("weights"):
                os.symlink(summary["weights"], Path(folder) / "weights.pt")
                self.client.log_artifact(run, str(Path(folder) / "weights.pt"), "model")


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None
