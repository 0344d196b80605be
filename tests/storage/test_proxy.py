"""The ``--ray`` storage proxy (tuner.storage.proxy) against a real gRPC server on 127.0.0.1 and a
real SQLite study: what a trial stores through the batching client is what it stores directly,
in a third of the round trips; the records another process reads at once are written at once; a
trial's state lands after its last row; a hostile batch changes nothing."""

from __future__ import annotations

import base64
import json
import logging
import time

import grpc
import optuna
import pytest
from optuna.trial import TrialState

from tuner.runtime import free_port
from tuner.storage import BatchingProxy, records, serve, sqlite_url
from tuner.storage.proxy import APPLY, MAX_WAIT_S


@pytest.fixture
def served(tmp_path):
    """(the study's SQLite URL, a BatchingProxy client) with the server stopped after."""
    url = sqlite_url(tmp_path / "s.db")
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    port = free_port()
    server = serve(optuna.storages.get_storage(url), "127.0.0.1", port)
    client = BatchingProxy(host="127.0.0.1", port=port)
    client.wait_server_ready(timeout=10)
    yield url, client
    client.close()
    server.stop(grace=None)


WRITES = {"set_trial_param", "set_trial_user_attr", "set_trial_system_attr", "set_trial_intermediate_value"}


class _Counted:
    """A storage's calls counted (what Optuna asks of it)."""

    def __init__(self, base: optuna.storages.BaseStorage) -> None:
        self.base, self.calls, self.writes = base, 0, 0

    def __getattr__(self, name: str):
        found = getattr(self.base, name)
        if name.startswith("_") or not callable(found):
            return found

        def counted(*args, **kwargs):
            self.calls += 1
            self.writes += name in WRITES
            return found(*args, **kwargs)
        return counted


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    batch = trial.suggest_categorical("batch_size", [32, 64, 128])
    trial.set_user_attr(records.PROCESS, {"host": "h", "pid": 1, "started": 0})
    trial.set_user_attr(records.HPARAMS, {"lr": x, "batch_size": batch})
    history = []
    for epoch in range(10):
        history.append({"epoch": epoch + 1, "val_accuracy": x * (epoch + 1)})
        trial.set_user_attr(records.HISTORY, list(history))
        trial.report(x * (epoch + 1), epoch)
        if epoch + 1 < 10 and trial.should_prune():
            raise optuna.TrialPruned()
    return x * 10


def _stored(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state, t.params, t.user_attrs, t.intermediate_values, t.values)
            for t in study.get_trials(deepcopy=False)]


def test_a_study_through_the_batching_proxy_stores_what_it_stores_directly(tmp_path, served):
    url, client = served
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2)
    direct = optuna.create_study(storage=sqlite_url(tmp_path / "d.db"), direction="maximize",
                                 sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=4), pruner=pruner)
    direct.optimize(_objective, n_trials=12)
    counted = _Counted(client)
    proxied = optuna.load_study(study_name="s", storage=counted,
                                sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=4), pruner=pruner)
    proxied.optimize(_objective, n_trials=12)

    on_disk = optuna.load_study(study_name="s", storage=url)
    assert _stored(on_disk) == _stored(direct)
    assert any(t.state == TrialState.PRUNED for t in on_disk.trials)  # the pruner read the study
    # 170 writes travel with the other calls: only each trial's process record goes at once.
    assert counted.writes > 150
    assert client.round_trips <= counted.calls - counted.writes + 2 * 12, (client.round_trips, counted.calls)


def test_the_process_record_is_in_the_database_before_the_next_call(served):
    url, client = served
    trial = optuna.load_study(study_name="s", storage=client).ask()
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    trial.set_user_attr(records.HPARAMS, {"lr": 0.1})
    trial.set_user_attr(records.PROCESS, {"host": "h", "pid": 7, "started": 0})
    stored = optuna.load_study(study_name="s", storage=url).trials[0]
    assert stored.user_attrs[records.PROCESS]["pid"] == 7  # what a restarted driver reads
    assert stored.params == {"lr": trial.params["lr"]}  # and what waited with it


def test_a_slow_epoch_rows_reach_the_database_without_waiting_for_a_read(served):
    """No pruner asks, no read carries the rows: a write made over MAX_WAIT_S after the oldest
    waiting one takes them along, so another terminal sees the epochs of a slow trial."""
    url, client = served
    trial = optuna.load_study(study_name="s", storage=client).ask()
    trial.report(0.25, 0)
    trial.set_user_attr(records.HISTORY, [{"epoch": 1}])
    time.sleep(MAX_WAIT_S + 0.2)  # the second epoch trains
    trial.report(0.5, 1)
    stored = optuna.load_study(study_name="s", storage=url).trials[0]
    assert stored.intermediate_values == {0: 0.25, 1: 0.5} and stored.user_attrs[records.HISTORY] == [{"epoch": 1}]


def test_a_trial_state_lands_after_its_last_row(served):
    url, client = served
    study = optuna.load_study(study_name="s", storage=client)
    trial = study.ask()
    for step in range(40):
        trial.report(step / 40, step)
        trial.set_user_attr(records.HISTORY, list(range(step + 1)))
    study.tell(trial, 0.5)
    stored = optuna.load_study(study_name="s", storage=url).trials[0]
    assert stored.state == TrialState.COMPLETE
    assert len(stored.intermediate_values) == 40 and stored.user_attrs[records.HISTORY] == list(range(40))


def test_a_write_to_a_trial_failed_meanwhile_is_logged_and_the_server_goes_on(served, caplog):
    url, client = served
    study = optuna.load_study(study_name="s", storage=client)
    trial = study.ask()
    optuna.storages.get_storage(url).set_trial_state_values(trial._trial_id, TrialState.FAIL)  # the driver's verdict
    trial.report(0.5, 0)
    with caplog.at_level(logging.WARNING, logger="tuner.storage.proxy"):
        study.get_trials()  # carries the refused write; the read itself is answered
        study.ask()  # waits for the writer: the refusal has been logged
    assert "refused" in caplog.text
    assert [t.state for t in optuna.load_study(study_name="s", storage=url).trials] == [TrialState.FAIL,
                                                                                       TrialState.RUNNING]


@pytest.mark.reliability
@pytest.mark.parametrize("frame", [
    b"not json",
    json.dumps([["DeleteStudy", ""], ["GetAllStudies", ""]]).encode(),  # only writes may come first
    json.dumps([["__class__", ""]]).encode(),
    json.dumps([["SetTrialUserAttribute", base64.b64encode(b"\xff\xfe garbage").decode()]]).encode(),
    json.dumps({"calls": []}).encode(),
])
def test_a_hostile_batch_is_refused_and_changes_nothing(served, frame):
    url, client = served
    with grpc.insecure_channel(f"127.0.0.1:{client._port}") as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(APPLY)(frame, timeout=10)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["s"]
