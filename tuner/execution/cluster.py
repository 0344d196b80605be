"""``tuner optimize --ray``: this process as a Ray driver, handing trials to actors Ray places.

The driver has prepared the study as a local run does (created it, queued the reference). It
then serves a SQLite study to the actors through Optuna's gRPC storage proxy (a ``--storage``
server database is opened by each actor itself), starts the weights' keeper on its own node
(:mod:`tuner.execution.actors`), asks Ray for as many trial actors as the cluster fits (each asking
``--cpus-per-trial`` and ``--gpus-per-trial``; ``--jobs N`` asks for N and Ray's scheduler runs
those that fit), and hands out the trial budget one trial (or one ``--fuse`` cohort) per call.
Progress events come back through a Ray queue to the live view; finished trials go through the
same callbacks as a local run's (``--trials auto``, MLflow).

Faults: an actor that dies mid-trial (its node lost, killed) has its trial stored as failed with
the reason, and a new actor is asked for in its place; the study goes on. Ctrl-C kills the
actors and stores their trials as interrupted. A driver killed outright takes its actors with it
(Ray ends a job's actors with its driver); its trials are failed when the study is next opened.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import optuna

from tuner.errors import TunerError, UsageError, first_line
from tuner.execution.budget import Budget
from tuner.planning.ray_connect import connect
from tuner.runtime.liveness import identity
from tuner.runtime.ports import free_port
from tuner.storage import records
from tuner.storage.proxy import serve
from tuner.storage.stale import fail_trials_of
from tuner.study.options import MAX_JOBS, OptimizeOptions
from tuner.trial.events import deliver

log = logging.getLogger(__name__)

NODE_LOST = "node lost: the machine running it left the Ray cluster mid-trial"
ACTOR_LOST = "its Ray actor died mid-trial"
# With no actor placed for this long and none running, the cluster cannot run a trial.
PLACEMENT_S = 120.0
# An actor that died is its node's loss if Ray declares the node dead within this time (its
# health check: 5 missed checks of 3 s by default), else its own.
VERDICT_S = 30.0

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


def trials_at_once(options: OptimizeOptions, resources: dict[str, float]) -> int:
    """How many trial actors to ask for: ``--jobs`` when given, else as many as the cluster fits."""
    if options.jobs > 1:
        return options.jobs
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fit = math.floor(cpus / options.cpus_per_trial + 1e-9)
    if options.trial_gpus > 0:
        fit = min(fit, math.floor(gpus / options.trial_gpus + 1e-9))
    if fit < 1:
        raise UsageError(f"--ray: the cluster has {cpus:g} CPUs and {gpus:g} GPUs; a trial asks for "
                         f"{options.cpus_per_trial:g} CPUs and {options.trial_gpus:g} GPUs (--cpus-per-trial, "
                         "--gpus-per-trial): not one fits")
    return min(fit, MAX_JOBS)


@dataclass
class _Slot:
    """One trial actor: starting (``ready`` pending), idle, or running a trial (``running``)."""

    actor: Any
    ready: Any | None
    process: dict[str, Any] | None = None
    running: Any | None = None
    since: float = 0.0
    claimed: int = 1  # trials of the budget its running call took (a --fuse cohort: up to K)


class _Driver:
    def __init__(self, ray: Any, prepared: Any, options: OptimizeOptions, callbacks: Sequence[Callback],
                 prepare: Callable[..., Any], budget: Budget) -> None:
        from ray.util.queue import Queue

        from tuner.execution.actors import ArtifactKeeper, TrialRunner

        self.ray, self.prepared, self.study, self.callbacks = ray, prepared, prepared.study, callbacks
        self.listener = prepared.objective.listener
        self.server, proxy = self._serve(prepared)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # The keeper and the events' queue live on this node: they go only when the driver does.
        here = {"num_cpus": 0, "scheduling_strategy": NodeAffinitySchedulingStrategy(
            node_id=ray.get_runtime_context().get_node_id(), soft=False)}
        keeper = None
        artifacts = prepared.artifacts
        if artifacts is not None and artifacts.folder is not None:  # on this disk: kept by an actor here
            keeper = ray.remote(ArtifactKeeper).options(**here).remote(
                artifacts.spec, None if artifacts.db_path is None else str(artifacts.db_path.absolute()))
        self.events = Queue(actor_options=here)
        actor_options = replace(options, ray=None, cpus_per_trial=1.0, gpus_per_trial=None,
                                device="cpu" if options.device == "cpu" else "auto")
        runner = ray.remote(TrialRunner).options(num_cpus=options.cpus_per_trial, num_gpus=options.trial_gpus,
                                                 max_restarts=0)
        self.threads = options.cpus_per_trial
        self._new = lambda: runner.remote(prepare, actor_options, proxy, keeper, self.events, identity())
        self.slots = [self._slot() for _ in range(trials_at_once(options, ray.cluster_resources()))]
        self.errors: list[str] = []
        self.lost: list[tuple[dict[str, Any], float, bool]] = []  # (process, when, node said dead)
        self.timed_out = False
        self.placed_at = time.monotonic()
        self.fuse = options.cohort_size
        self.budget = budget

    def start(self, slot: _Slot) -> int:
        """Give ``slot``'s actor its next cohort of up to ``--fuse`` trials (of one: a trial alone)
        from the budget; how many trials it took (0: the budget is spent)."""
        size = self.budget.take(self.fuse)
        if size:
            slot.claimed = size
            slot.running = slot.actor.run_cohort.remote(self.budget.deadline, size)
        return size

    def _serve(self, prepared: Any) -> tuple[Any, tuple[str, int] | None]:
        """A SQLite study served through Optuna's gRPC proxy, on this node's address."""
        if prepared.location.db_path is None:
            return None, None
        host = self.ray.util.get_node_ip_address()
        port = free_port(host)
        return serve(self.study._storage, host, port), (host, port)

    def _slot(self) -> _Slot:
        actor = self._new()
        return _Slot(actor, actor.process.remote(), since=time.monotonic())

    def _finished(self, trials: Sequence[optuna.trial.FrozenTrial]) -> None:
        for trial in trials:
            for callback in self.callbacks:
                callback(self.study, trial)

    def relay_events(self) -> None:
        """The actors' progress events to the live view."""
        size = self.events.qsize()
        for event in self.events.get_nowait_batch(size) if size else []:
            deliver(event, self.listener)

    def _node_alive(self, process: dict[str, Any] | None) -> bool:
        node = (process or {}).get("node", {}).get("id")
        return any(n["NodeID"] == node and n["Alive"] for n in self.ray.nodes())

    def _lost(self, i: int, slot: _Slot, error: BaseException) -> None:
        """An actor died: fail its trial with the reason, ask for another in its place."""
        started = getattr(error, "cause", None)
        if slot.process is None and isinstance(started, self.ray.exceptions.RayTaskError):
            # Its __init__ raised (data missing on that node, a plugin not installed there): every
            # actor would, so the run stops with the reason.
            cause = getattr(started, "cause", None)
            said = str(cause) if isinstance(cause, TunerError) else first_line(cause or started, 300)
            self.errors.append(f"a Ray trial actor could not start: {said}")
            return
        if slot.process is not None:
            self.lost.append((slot.process, time.monotonic(), "node has died" in str(error)))
        self.slots[i] = self._slot()

    def judge_lost(self, wait: bool = False) -> None:
        """Fail the lost actors' trials, with the reason: its node lost (Ray marks a node dead some
        seconds after its raylet goes silent), or the actor alone once :data:`VERDICT_S` passed."""
        while self.lost:
            judged = []
            for process, since, node_said in self.lost:
                gone = node_said or not self._node_alive(process)
                if gone or time.monotonic() - since > VERDICT_S:
                    reason = NODE_LOST if gone else ACTOR_LOST
                    failed = fail_trials_of(self.study, process, reason)
                    log.warning("a Ray actor on %s died (%s); trial %s stored as failed; another actor takes "
                                "its place", process.get("node", {}).get("ip", "?"), reason,
                                ", ".join(map(str, failed)) or "none")
                    if failed:
                        self._finished([t for t in self.study.get_trials(deepcopy=False) if t.number in failed])
                    judged.append((process, since, node_said))
            self.lost = [entry for entry in self.lost if entry not in judged]
            if not wait:
                return
            time.sleep(0.5)

    def settle(self, ref: Any) -> None:
        """What a finished call says: an actor up, a trial done, or an actor lost."""
        i, slot = next((i, s) for i, s in enumerate(self.slots) if ref in (s.ready, s.running))
        try:
            value = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as e:
            self._lost(i, slot, e)
            return
        except self.ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            self.errors.append(str(cause) if isinstance(cause, TunerError) else first_line(cause or e, 300))
            slot.running = None
            return
        if ref is slot.ready:
            slot.ready, slot.process = None, value
            self.placed_at = time.monotonic()
            return
        slot.running = None
        trials, timed_out, drawn = value
        self.budget.give_back(slot.claimed - drawn)  # taken and not drawn
        self.timed_out |= timed_out
        self._finished(trials)

    def pending(self) -> list[Any]:
        return [ref for s in self.slots for ref in (s.ready, s.running) if ref is not None]

    def stop(self, reason: str) -> None:
        """Kill every actor; the trials they were running are stored as failed with ``reason``."""
        for slot in self.slots:
            self.ray.kill(slot.actor, no_restart=True)
            if slot.running is not None and slot.process is not None:
                fail_trials_of(self.study, slot.process, reason)
            slot.running = None

    def close(self) -> None:
        for slot in self.slots:
            self.ray.kill(slot.actor, no_restart=True)
        if self.server is not None:
            self.server.stop(grace=None)


def run_on_ray(prepared: Any, trials: int | None, timeout: float | None, prepare: Callable[..., Any],
               callbacks: Sequence[Callback] = (), closed: Callable[[], bool] | None = None) -> None:
    """Run ``trials`` new trials (or until ``timeout``, or until ``closed()`` says so) in Ray actors.
    ``prepare`` is :func:`tuner.study.prepare.prepare_study`, which each actor calls to join the
    study (passed in, as to ``--jobs`` workers).

    Raises KeyboardInterrupt after the actors are gone when interrupted, and :class:`TunerError`
    when an actor could not run (its message) or the cluster places none."""
    options: OptimizeOptions = prepared.options
    ray = connect(options.ray or "local")
    budget = Budget.lasting(trials, timeout, closed)
    driver = None
    try:
        driver = _Driver(ray, prepared, options, callbacks, prepare, budget)
        while not driver.errors:
            driver.relay_events()
            refs = driver.pending()
            if refs:
                done, _ = ray.wait(refs, num_returns=1, timeout=0.2)
                for ref in done:
                    driver.settle(ref)
            stopping = driver.timed_out or budget.spent()
            for slot in driver.slots:
                if not stopping and slot.process is not None and slot.running is None:
                    stopping = not driver.start(slot) or budget.spent()
            driver.judge_lost()
            running = any(s.running is not None for s in driver.slots)
            if stopping and not running:
                driver.judge_lost(wait=True)
                break
            if not running and time.monotonic() - driver.placed_at > PLACEMENT_S:
                raise TunerError(f"--ray: Ray placed no trial actor in {PLACEMENT_S:.0f} s; each asks for "
                                 f"{options.cpus_per_trial:g} CPUs and {options.trial_gpus:g} GPUs, and the "
                                 f"cluster has {ray.available_resources()} free")
        driver.relay_events()
        if driver.errors:
            driver.stop(records.INTERRUPTED)
            raise TunerError(driver.errors[0])
    except KeyboardInterrupt:
        if driver is not None:
            driver.stop(records.INTERRUPTED)
        raise
    finally:
        if driver is not None:
            driver.close()
        ray.shutdown()
