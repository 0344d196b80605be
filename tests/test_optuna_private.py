"""The private Optuna calls tuner makes, pinned: each test fails when Optuna changes the call, so
an upgrade shows what to rewrite instead of breaking a study mid-run. Call sites name this file."""

from __future__ import annotations

import inspect

import optuna
from optuna.trial import TrialState

from tuner.runtime import host
from tuner.search import make_sampler
from tuner.storage import fail_dead_trials, records, sqlite_url


def _study(folder, sampler=None):
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(storage=sqlite_url(folder / "s.db"), direction="maximize", sampler=sampler)


def test_a_running_trial_of_another_process_can_be_failed_through_the_storage(tmp_path):
    """tuner.storage.stale.fail_dead_trials: no public call finishes a trial this process did not start."""
    study = _study(tmp_path)
    trial = study.ask()
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen._trial_id == trial._trial_id
    assert "set_trial_state_values" in dir(study._storage)
    assert list(inspect.signature(study._storage.set_trial_state_values).parameters)[:2] == ["trial_id", "state"]
    study._storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL)
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL


def test_fail_dead_trials_fails_a_trial_whose_process_is_gone(tmp_path):
    study = _study(tmp_path)
    trial = study.ask()
    trial.set_user_attr(records.PROCESS, {"host": host(), "pid": 2**22 + 12345, "started": 1})  # no such pid
    assert fail_dead_trials(study) == [0]
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL


def test_samplers_read_trials_through_the_cached_private_read(tmp_path):
    """tuner.search.snapshot: Optuna's samplers call study._get_trials(deepcopy, states, use_cache); the
    snapshot answers that call, so its name and keywords must still be what they call."""
    params = inspect.signature(optuna.Study._get_trials).parameters
    assert {"deepcopy", "states", "use_cache"} <= set(params)
    called = []
    original = optuna.Study._get_trials

    def spy(self, *args, **kwargs):
        called.append(kwargs)
        return original(self, *args, **kwargs)

    optuna.Study._get_trials = spy
    try:
        plain = _study(tmp_path / "plain", optuna.samplers.TPESampler(seed=0, n_startup_trials=1))
        for _ in range(3):
            plain.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    finally:
        optuna.Study._get_trials = original
    assert any("use_cache" in kwargs for kwargs in called), called
    snap = _study(tmp_path / "snap", make_sampler("tpe", 0))
    snap.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert len(snap.trials) == 3


def test_a_frozen_trial_is_rebuilt_with_its_private_id(tmp_path):
    """tuner.after.dashboard.named_trial builds FrozenTrials again: FrozenTrial takes trial_id and keeps _trial_id."""
    study = _study(tmp_path)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    frozen = study.trials[0]
    again = optuna.trial.FrozenTrial(
        number=frozen.number, state=frozen.state, value=None, values=frozen.values,
        datetime_start=frozen.datetime_start, datetime_complete=frozen.datetime_complete, params=frozen.params,
        distributions=frozen.distributions, user_attrs={}, system_attrs={}, intermediate_values={},
        trial_id=frozen._trial_id,
    )
    assert again._trial_id == frozen._trial_id


def test_a_sampler_writes_on_the_trial_it_draws_through_the_storage(tmp_path):
    """tuner.search.prior.PriorSampler.before_trial: a sampler has no public call that writes on the
    trial it draws; Optuna's GridSampler uses study._storage with the FrozenTrial's _trial_id."""
    study = _study(tmp_path)
    seen = []

    class Marking(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial):
            seen.append(trial)
            study._storage.set_trial_user_attr(trial._trial_id, records.DRAWN, records.PRIOR)

    study.sampler = Marking(seed=0)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert isinstance(seen[0], optuna.trial.FrozenTrial)
    assert [t.user_attrs[records.DRAWN] for t in study.trials] == [records.PRIOR] * 2
    prior = _study(tmp_path / "prior", make_sampler("tpe", 0, prior={"x": 0.5}))
    prior.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    assert any(t.user_attrs.get(records.DRAWN) == records.PRIOR for t in prior.trials)


def test_the_grpc_proxy_pieces_tuner_builds_on_are_still_there():
    """tuner.storage.proxy: the server is built from Optuna's servicer and generated service
    (the public run_grpc_proxy_server blocks until killed and hides them); the client replaces
    GrpcStorageProxy's stub, which its methods and its trial cache call by Optuna's method names
    with Optuna's request messages. Behaviour: tests/storage/test_proxy.py."""
    from optuna.storages import GrpcStorageProxy
    from optuna.storages._grpc import client
    from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    assert callable(api_pb2_grpc.add_StorageServiceServicer_to_server)
    assert list(inspect.signature(OptunaStorageProxyService).parameters) == ["storage"]
    service = api_pb2.DESCRIPTOR.services_by_name["StorageService"]
    names = {m.name for m in service.methods}
    assert {"SetTrialParameter", "SetTrialUserAttribute", "SetTrialSystemAttribute", "SetTrialIntermediateValue",
            "SetTrialStateValues", "GetTrials", "GetTrial", "CreateNewTrial"} <= names
    assert all(hasattr(OptunaStorageProxyService, name) for name in names)
    assert api_pb2.SetTrialUserAttributeRequest(trial_id=1, key="k").key == "k"
    setup = inspect.getsource(GrpcStorageProxy._setup)
    assert "self._channel" in setup and "self._stub" in setup and "GrpcClientCache(self._stub)" in setup
    assert "self.grpc_client.GetTrials(" in inspect.getsource(client.GrpcClientCache)


def test_a_trial_whose_ray_driver_is_gone_is_failed(tmp_path):
    """tuner.storage.stale.fail_dead_trials: a --ray actor's trial names its driver; a dead driver
    took the actor with it, wherever it ran."""
    study = _study(tmp_path)
    trial = study.ask()
    trial.set_user_attr(records.PROCESS, {"host": "another-node", "pid": 7, "started": 1,
                                          "driver": {"host": host(), "pid": 2**22 + 12345, "started": 1}})
    assert fail_dead_trials(study) == [0]


def test_a_trial_asked_outside_optimize_keeps_a_heartbeat(tmp_path):
    """tuner.execution.cohorts: a cohort's trials are asked and told, not run by ``study.optimize``, and
    keep their heartbeats with the thread ``study.optimize`` itself starts."""
    import time

    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    storage = optuna.storages.RDBStorage(sqlite_url(tmp_path / "h.db"), heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, direction="maximize")
    assert is_heartbeat_enabled(study._storage)
    trial = study.ask()
    with get_heartbeat_thread(trial._trial_id, study._storage):
        time.sleep(3)
        optuna.storages.fail_stale_trials(study)
        assert study.get_trials(deepcopy=False)[0].state == TrialState.RUNNING  # its heart beats
    time.sleep(3)
    optuna.storages.fail_stale_trials(study)
    assert study.get_trials(deepcopy=False)[0].state == TrialState.FAIL  # stopped beating: stale
