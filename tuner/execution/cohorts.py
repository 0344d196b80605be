"""The study's one ask/tell loop: trials drawn K at a time (``--fuse K``; K = 1, a trial alone)
and trained as one fused cohort, each drawn, reported, pruned, saved and told as its own trial,
while the run's :class:`~tuner.execution.budget.Budget` lasts. This process, each ``--jobs``
worker and each ``--ray`` actor run their trials through it.

A cohort's first trial (its leader) is drawn as any trial is. The others are drawn with the
leader's batch size, optimizer and plugin hyperparameters fixed (Optuna's ``PartialFixedSampler``
around the study's own sampler), everything else per member, so the study stays an ordinary
Optuna study. They train as one stacked model (:class:`tuner.training.fused.Cohort`); after each
epoch every member reports its own validation accuracy and the pruner judges it alone: a pruned
member leaves the stack and the others go on. Each member keeps its own weights as a trial alone
does, and its checkpoints are a trial alone's (:meth:`Cohort.trainer`): an interrupted member's
retry goes on alone from its last saved epoch. A retry, a trial queued with other values, or a
leader whose shared values the space cannot express trains alone.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch
from optuna.samplers import PartialFixedSampler
from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled  # tests/test_optuna_private.py
from optuna.trial import FrozenTrial, TrialState

from tuner.contract import Fixed, Hyperparameters, Param
from tuner.errors import TrialFailed, first_line
from tuner.execution.budget import Budget
from tuner.runtime import interrupt
from tuner.storage import records
from tuner.training.fused import SHARED, CannotFuse, Cohort
from tuner.training.loop import released
from tuner.trial import checkpoint
from tuner.trial.objective import Objective
from tuner.trial.recorder import CheckpointClock, EpochRecorder, batch_progress, past_deadline

Callback = Callable[[optuna.Study, FrozenTrial], None]


class Stoppable:
    """The study as the callbacks see it: ``stop()`` ends the cohort loop (outside
    ``study.optimize``, Optuna's own ``stop`` refuses), everything else is the study's."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


@dataclass
class Member:
    trial: optuna.Trial
    hp: Hyperparameters
    reference: bool
    seed: int
    history: list[dict[str, float]] = field(default_factory=list)


def shared_values(hp: Hyperparameters, space: dict[str, Param]) -> dict[str, Any] | None:
    """What the other members are drawn with: ``hp``'s shared settings wherever the space searches
    them; None when the space cannot express one (a reference's batch of 1000 outside it)."""
    fixed: dict[str, Any] = {}
    for name, value in {**{n: getattr(hp, n) for n in SHARED}, **dict(hp.extra)}.items():
        param = space.get(name)
        if param is None or isinstance(param, Fixed):
            continue
        if not param.contains(value):
            return None
        fixed[name] = value
    return fixed


def _fits_with(hp: Hyperparameters, leader: Hyperparameters) -> bool:
    return all(getattr(hp, n) == getattr(leader, n) for n in SHARED) and dict(hp.extra) == dict(leader.extra)


def _waiting(study: optuna.Study) -> bool:
    return bool(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


class CohortRunner:
    """Runs a prepared study's trials ``size`` at a time (see the module doc)."""

    def __init__(self, study: optuna.Study, objective: Objective, size: int, callbacks: Sequence[Callback]) -> None:
        self.study, self.objective, self.size = study, objective, size
        self.callbacks = list(callbacks)
        self.stoppable = Stoppable(study)

    def run(self, budget: Budget) -> int:
        """Draw and train cohorts (of one: a trial alone) while ``budget`` lasts, no callback has
        stopped the study and no trial stopped at ``--timeout``; the trials started. A stop asked
        for (Ctrl-C) ends the loop; it is raised where the caller's ``interrupt.deferred()`` ends."""
        started = 0
        while not (self.stoppable.stopped or self.objective.timed_out) and interrupt.pending() is None:
            taken = budget.take(self.size)
            if not taken:
                break
            drawn = self.run_one(taken)
            budget.give_back(taken - drawn)
            started += drawn
        return started

    def run_one(self, size: int) -> int:
        """Draw one cohort of up to ``size`` trials and train it (and any trial that trains
        alone); the number of trials drawn."""
        if is_heartbeat_enabled(self.study._storage):  # as study.optimize does before each trial
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        members, alone = self._draw(size)
        with self._heartbeats([m.trial for m in members] + [m.trial for m in alone]):
            waiting = dict(enumerate(alone))
            try:
                if members:
                    self._train(members)
                for i, m in list(waiting.items()):
                    del waiting[i]
                    self._tell_after(m.trial, lambda m=m: self.objective.train(m.trial, m.hp, m.reference, m.seed))
            except BaseException as e:  # the trials drawn to train alone afterwards, not started yet
                self._fail_all(waiting, records.INTERRUPTED if isinstance(e, KeyboardInterrupt) else first_line(e, 200))
                raise
        return len(members) + len(alone)

    @contextlib.contextmanager
    def _heartbeats(self, trials: list[optuna.Trial]) -> Iterator[None]:
        """Each running trial's heartbeat, as ``study.optimize`` keeps one (a machine that dies
        leaves trials that other processes fail after the grace)."""
        with contextlib.ExitStack() as stack:
            for t in trials:
                stack.enter_context(get_heartbeat_thread(t._trial_id, self.study._storage))
            yield

    def _begin(self, trial: optuna.Trial) -> Member:
        try:
            interrupt.check()  # asked to stop while the trial was being drawn
            return Member(trial, *self.objective.begin(trial))
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
            self.study.tell(trial, state=TrialState.FAIL)
            raise

    def _ask(self) -> optuna.Trial:
        with warnings.catch_warnings():  # this runner keeps each trial's heartbeat (_heartbeats)
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed", UserWarning)
            return self.study.ask()

    def _draw(self, size: int) -> tuple[list[Member], list[Member]]:
        """The cohort's members, and the trials drawn that train alone."""
        trial = self._ask()
        if trial.user_attrs.get(records.RETRY_OF) is not None:  # goes on alone from its checkpoint
            return [], [self._begin(trial)]
        leader = self._begin(trial)
        fixed = shared_values(leader.hp, self.objective.space) if size > 1 else None
        if fixed is None:
            return [], [leader]
        members, alone, base = [leader], [], self.study.sampler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.sampler = PartialFixedSampler(fixed, base)
        try:
            while len(members) + len(alone) < size and not _waiting(self.study):
                m = self._begin(self._ask())
                (members if _fits_with(m.hp, leader.hp) else alone).append(m)
        except BaseException:
            for m in members + alone:
                self.study.tell(m.trial, state=TrialState.FAIL)
            raise
        finally:
            self.study.sampler = base
        return (members, alone) if len(members) > 1 else ([], members + alone)

    def _tell(self, trial: optuna.Trial, state: TrialState, value: float | None = None) -> None:
        frozen = self.study.tell(trial, value, state=state)
        for callback in self.callbacks:
            callback(self.stoppable, frozen)  # type: ignore[arg-type]

    def _tell_after(self, trial: optuna.Trial, train: Callable[[], float]) -> None:
        """Train a trial alone and tell how it ended, as ``study.optimize`` does."""
        try:
            value = train()
        except optuna.TrialPruned:
            self._tell(trial, TrialState.PRUNED)
        except TrialFailed:
            self._tell(trial, TrialState.FAIL)
        except BaseException:
            self._tell(trial, TrialState.FAIL)
            raise
        else:
            self._tell(trial, TrialState.COMPLETE, value)

    def _train(self, members: list[Member]) -> None:
        objective = self.objective
        try:
            cohort = Cohort(objective.arch, objective.data, [m.hp for m in members], [m.seed for m in members])
        except CannotFuse:
            for m in members:
                self._tell_after(m.trial, lambda m=m: objective.train(m.trial, m.hp, m.reference, m.seed))
            return
        for m in members:
            m.trial.set_user_attr(records.COHORT, [n.trial.number for n in members])
        running = dict(enumerate(members))  # the cohort's index of each member still trained
        try:
            self._epochs(cohort, running)
        except torch.OutOfMemoryError:
            released(objective.data.train_x.device)
            self.size = max(1, len(members) // 2)  # the later cohorts, smaller
            if any(m.history for m in running.values()):
                self._fail_all(running, f"out of memory in a cohort of {len(members)} "
                                        f"(batch_size={members[0].hp.batch_size})")
                return
            for m in running.values():  # nothing reported yet: each trains alone instead
                self._tell_after(m.trial, lambda m=m: objective.train(m.trial, m.hp, m.reference, m.seed))
        except KeyboardInterrupt:
            self._fail_all(running, records.INTERRUPTED)
            raise
        except Exception as e:
            self._fail_all(running, first_line(e, 200))
            raise

    def _fail_all(self, running: dict[int, Member], reason: str) -> None:
        for m in running.values():
            m.trial.set_user_attr(records.FAIL_REASON, reason)
            self._tell(m.trial, TrialState.FAIL)
        running.clear()

    def _epochs(self, cohort: Cohort, running: dict[int, Member]) -> None:
        objective, epochs = self.objective, self.objective.epochs
        clock, wall = CheckpointClock(objective.checkpoint_every), None
        recorders = {k: EpochRecorder(m.trial, epochs, objective.listener, m.history) for k, m in running.items()}
        for epoch in range(epochs):
            if past_deadline(objective.deadline, wall):
                self._stop_at_deadline(cohort, running, epoch)
                return
            cohort.on_batch = batch_progress(objective.listener, [m.trial.number for m in running.values()],
                                             epoch + 1, epochs, len(objective.data.train_y),
                                             cohort.hps[cohort.members[0]].batch_size)
            started = time.perf_counter()
            results = cohort.epoch()
            wall = time.perf_counter() - started
            lr_next = cohort.lrs  # lowered at this epoch's end when below lr (tuner.search.pruning)
            for k, result, lr in zip(list(running), results, lr_next, strict=True):
                if self._after_epoch(recorders[k], epoch, result, lr, wall / len(results)):
                    del running[k]
            if not running:
                return
            if len(running) < len(cohort.members):
                cohort.keep(list(running))
            if clock.due(epoch, epochs) and objective.artifacts is not None:
                with clock.saving():
                    for k, m in running.items():
                        checkpoint.save(m.trial, cohort.trainer(k, m.seed), epoch + 1, objective.artifacts)
        for k, m in list(running.items()):
            value = m.history[-1]["val_accuracy"]
            objective.keep_weights(m.trial, cohort.model(k), value, m.reference)
            objective.drop_checkpoints(m.trial, None)
            del running[k]
            self._tell(m.trial, TrialState.COMPLETE, value)

    def _after_epoch(self, recorder: EpochRecorder, epoch: int, result: Any, lr_next: float, seconds: float) -> bool:
        """Record a member's epoch; whether it leaves the cohort (failed or pruned, and told)."""
        try:
            recorder.record(epoch, result, lr_next, seconds)
        except TrialFailed:
            self._tell(recorder.trial, TrialState.FAIL)
            return True
        if recorder.pruned(epoch, result):
            self.objective.drop_checkpoints(recorder.trial, None)
            self._tell(recorder.trial, TrialState.PRUNED)
            return True
        return False

    def _stop_at_deadline(self, cohort: Cohort, running: dict[int, Member], epoch: int) -> None:
        """``--timeout`` comes before the next epoch would end: save each member, stop them and the run."""
        self.objective.timed_out = True
        for k, m in list(running.items()):
            if self.objective.artifacts is not None:
                checkpoint.save(m.trial, cohort.trainer(k, m.seed), epoch, self.objective.artifacts)
            m.trial.set_user_attr(records.FAIL_REASON, records.TIMED_OUT)
            del running[k]
            self._tell(m.trial, TrialState.FAIL)
