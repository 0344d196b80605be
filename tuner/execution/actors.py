"""What ``--ray`` runs on the cluster's nodes: the actor that trains trial after trial, and the
one that keeps the study's weights on the driver's node.

A trial actor joins the study the driver made (through the driver's gRPC storage proxy for a
SQLite study, or the server database itself), loads the data once, and runs one trial per call,
as a ``--jobs`` worker does. Its trials record which node and process ran them, and which driver
started them: a driver that died takes its actors with it, and the next run fails their trials
at once (:func:`tuner.storage.stale.fail_dead_trials`).

Weights written by an actor go to a :class:`RelayStore`, which hands the bytes to the
:class:`ArtifactKeeper` pinned on the driver's node: the study's folder store is on the driver's
disk, and no node needs to mount it. (An ``s3://`` store is reached by each actor itself.)
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any, BinaryIO

import optuna
import ray
import torch

from tuner.runtime.liveness import identity
from tuner.runtime.logs import quiet_libraries
from tuner.storage.location import locate
from tuner.storage.opening import storage_for
from tuner.storage.proxy import BatchingProxy
from tuner.storage.stores import open_store
from tuner.study.options import OptimizeOptions
from tuner.trial.events import Forward

# What the driver passes for a SQLite study: the proxy's address; None: the actor opens --storage.
ProxyAddress = tuple[str, int] | None


class ArtifactKeeper:
    """The study's artifact store, on the driver's node, for actors anywhere (a Ray actor)."""

    def __init__(self, spec: str, db_path: str | None) -> None:
        from pathlib import Path

        self.store = open_store(spec, None if db_path is None else Path(db_path))

    def write(self, artifact_id: str, body: bytes) -> None:
        self.store.write(artifact_id, io.BytesIO(body))

    def read(self, artifact_id: str) -> bytes:
        with self.store.open_reader(artifact_id) as reader:
            return reader.read()

    def remove(self, artifact_id: str) -> None:
        self.store.remove(artifact_id)


class RelayStore:
    """Optuna's artifact-store protocol, each call sent to the :class:`ArtifactKeeper`."""

    def __init__(self, keeper: Any) -> None:
        self.keeper = keeper

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return io.BytesIO(ray.get(self.keeper.read.remote(artifact_id)))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        ray.get(self.keeper.write.remote(artifact_id, content_body.read()))

    def remove(self, artifact_id: str) -> None:
        ray.get(self.keeper.remove.remote(artifact_id))


def _storage(options: OptimizeOptions, proxy: ProxyAddress) -> optuna.storages.BaseStorage:
    if proxy is None:  # a server database: every actor opens it, as a second machine would
        location = locate(options.study_name, options.db, options.storage)
        return storage_for(location, create=False)
    storage = BatchingProxy(host=proxy[0], port=proxy[1])
    storage.wait_server_ready(timeout=60)
    return storage


class TrialRunner:
    """One actor: the study joined once, then :meth:`run_one` trial per call (a Ray actor).

    Args:
        prepare: :func:`tuner.study.prepare.prepare_study` (passed in: this module is imported by
            the driver's side too, which prepare imports).
        options: The driver's options (its plugin, data folder, settings); the device is this
            actor's: CUDA when Ray gave it a GPU share and ``--device`` allows, else the CPU.
        proxy: The driver's gRPC storage proxy, or None for a ``--storage`` server database.
        keeper: The :class:`ArtifactKeeper`, or None when the actor reaches the store itself.
        events: A ``ray.util.queue.Queue`` that carries the live view's events to the driver.
        driver: The driver's process record (:func:`tuner.runtime.liveness.identity`).
    """

    def __init__(self, prepare: Callable[..., Any], options: OptimizeOptions, proxy: ProxyAddress, keeper: Any,
                 events: Any, driver: dict[str, Any]) -> None:
        from dataclasses import replace

        quiet_libraries()
        torch.set_num_threads(max(1, math.floor(options.cpus_per_trial)))
        context = ray.get_runtime_context()
        device = "cuda" if ray.get_gpu_ids() and options.device != "cpu" else "cpu"
        self.prepared = prepare(replace(options, device=device), listener=Forward(events), record=False,
                                      storage=_storage(options, proxy))
        if keeper is not None and self.prepared.artifacts is not None:
            self.prepared.artifacts.store = RelayStore(keeper)
            self.prepared.artifacts.folder = None  # save's scratch file: this node's cache folder
        self.node = {"id": context.get_node_id(), "ip": ray.util.get_node_ip_address()}
        self.prepared.objective.owner = {"driver": driver, "node": self.node}

    def process(self) -> dict[str, Any]:
        """This actor's process record, as its trials store it."""
        return {**identity(), "node": self.node}

    def run_cohort(self, deadline: float | None, size: int) -> tuple[list[optuna.trial.FrozenTrial], bool, int]:
        """Draw up to ``size`` trials and train them as one cohort (``--fuse``; of one, a trial
        alone: :class:`tuner.execution.cohorts.CohortRunner`); the trials as stored, whether
        ``--timeout`` stopped them, and how many were drawn (fewer than ``size`` go back to the
        driver's budget; the driver hands the trials to its callbacks without reading the study)."""
        from tuner.execution.cohorts import CohortRunner

        objective = self.prepared.objective
        objective.deadline = deadline
        done: list[optuna.trial.FrozenTrial] = []
        runner = CohortRunner(self.prepared.study, objective, size,
                              [objective.after_trial, lambda study, trial: done.append(trial)])
        drawn = runner.run_one(size)
        return done, objective.timed_out, drawn
