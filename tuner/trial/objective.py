"""One Optuna trial: sample hyperparameters, build the model, train epoch by epoch, report, prune.

Per epoch the trial stores one history row and one intermediate value (two storage writes);
nothing is written per batch.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import optuna
import torch

from tuner.contract import Architecture, Hyperparameters, Param
from tuner.data.prepared import PreparedData
from tuner.errors import TrialFailed, UsageError, first_line
from tuner.runtime import interrupt
from tuner.runtime.liveness import identity
from tuner.search.space import (
    acting,
    fixed_params_for,
    hyperparameters,
    sample,
    sample_reference,
    smaller_batches,
)
from tuner.storage import records
from tuner.storage.records import rank
from tuner.training.device import device_kind
from tuner.training.loop import DoesNotFit, Trainer, start_training, trial_seed
from tuner.trial import checkpoint
from tuner.trial.events import Listener, Silent
from tuner.trial.recorder import CheckpointClock, EpochRecorder, batch_progress, past_deadline

if TYPE_CHECKING:
    from tuner.storage.weights import StudyArtifacts


def enqueue_reference(study: optuna.Study, reference: Hyperparameters, space: dict[str, Param]) -> None:
    """Queue the architecture's hand-picked settings as the next trial (trial 0 of a new study)."""
    study.enqueue_trial(fixed_params_for(reference, space), user_attrs={records.REFERENCE: True})


@dataclass
class Objective:
    """One trial's life, from its draw (:meth:`begin`) to its kept weights (:meth:`train`), as the
    run loop (:class:`tuner.execution.cohorts.CohortRunner`) calls it; called whole, it is an
    ordinary Optuna objective (benchmarks hand it to ``study.optimize``).

    Args:
        arch: The architecture plugin.
        data: Prepared tensors on the device.
        space: The study's search space.
        epochs: Epochs per trial (the reference trial too, so the comparison is fair).
        seed: The study's seed; trial ``n`` seeds its weights and batch order from it.
        artifacts: Where the weights of the reference and of the ``keep`` best trials go.
        kept: ``(value, trial)`` of the completed trials whose weights are kept, best first
            (a resumed study's are restored); a trial that falls out has its weights removed
            once the trial that displaced it is stored (as an Optuna callback: :meth:`after_trial`).
        listener: Receives progress events.
        compile: ``torch.compile`` each trial's model (``--compile``).
        recipe: What every trial of this run shares of its recipe (plugin and versions, split
            seed, epochs, device); each trial adds its own seed and thread count.
        checkpoint_every: Save the running trial's state at the end of an epoch once this many
            seconds of training have passed since the last save (0: every epoch; None: never), so
            that an interrupted or killed trial goes on from there (:mod:`tuner.trial.checkpoint`).
            Above 0, the wait grows so that saving costs at most :data:`CHECKPOINT_SHARE` of training.
        deadline: ``--timeout`` as a ``time.time()``: a trial whose next epoch would end after it
            stops at the epoch's end, saved to go on from there (``records.TIMED_OUT``), and
            :attr:`timed_out` is set so that no further trial starts.
        owner: Added to the process record of each trial (a ``--ray`` actor's driver and node).
    """

    arch: Architecture
    data: PreparedData
    space: dict[str, Param]
    epochs: int
    seed: int
    artifacts: StudyArtifacts | None = None
    kept: list[tuple[float, int]] = field(default_factory=list)
    listener: Listener = field(default_factory=Silent)
    compile: bool = False
    recipe: dict[str, Any] = field(default_factory=dict)
    checkpoint_every: float | None = None
    deadline: float | None = None
    owner: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False
    _displaced: list[int] = field(default_factory=list)

    def hyperparameters_for(self, trial: optuna.Trial) -> tuple[Hyperparameters, bool]:
        reference = self.arch.reference
        if trial.user_attrs.get(records.REFERENCE) and reference is not None:
            # Train with the reference itself, whatever the space can express of it.
            sample_reference(trial, self.space, reference)
            return hyperparameters({}, base=reference), True
        return hyperparameters(sample(trial, self.space)), False

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            interrupt.check()  # asked to stop while the trial was being drawn
            hp, is_reference, seed = self.begin(trial)
        except KeyboardInterrupt:
            trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
            raise
        return self.train(trial, hp, is_reference, seed)

    def train(self, trial: optuna.Trial, hp: Hyperparameters, is_reference: bool, seed: int) -> float:
        """Train a trial :meth:`begin` drew (a retry from its original's checkpoint); its value."""
        trainer = None
        try:
            original = self._original(trial)
            trainer = start_training(self.arch, self.data, hp, seed, self.compile)
            history = self._go_on_from(trial, trainer, original) if original is not None else []
            value = self._train(trial, trainer, history)
            self.keep_weights(trial, trainer.model, value, is_reference)
            self.drop_checkpoints(trial, original)
            return value
        except optuna.TrialPruned:
            self.drop_checkpoints(trial, self._original(trial))
            raise
        except torch.cuda.OutOfMemoryError as e:
            del trainer
            gc.collect()
            torch.cuda.empty_cache()
            detail = str(e).split(".")[0].strip() or "CUDA out of memory"
            reason = f"{detail} (batch_size={hp.batch_size})"
            trial.set_user_attr(records.FAIL_REASON, reason)
            self._did_not_fit(trial, hp.batch_size)
            raise TrialFailed(reason) from e
        except DoesNotFit as e:
            trial.set_user_attr(records.FAIL_REASON, str(e))
            self._did_not_fit(trial, hp.batch_size)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr(records.FAIL_REASON, records.INTERRUPTED)
            raise
        except TrialFailed:
            raise
        except Exception as e:
            # Stored so that a failed trial always says why (one without a reason was killed).
            trial.set_user_attr(records.FAIL_REASON, first_line(e, 200))
            if self.compile and type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
                # Not this trial's fault: every trial would fail the same way.
                raise UsageError(f"--compile: torch.compile failed ({first_line(e, 200)}); "
                                 "run without --compile") from e
            raise

    def begin(self, trial: optuna.Trial) -> tuple[Hyperparameters, bool, int]:
        """Draw the trial's hyperparameters and record who runs it and how: its settings, whether
        it is the reference, and its seed (a retry's is its original's)."""
        # Which process runs it: a resume fails it at once if this process dies (tuner.runtime.liveness).
        trial.set_user_attr(records.PROCESS, {**identity(), **self.owner})
        hp, is_reference = self.hyperparameters_for(trial)
        trial.set_user_attr(records.HPARAMS, acting(hp.as_dict()))  # what trained, not what was inert
        original = self._original(trial)
        recipe = original.user_attrs.get(records.RECIPE) if original is not None else None
        seed = recipe["trial_seed"] if recipe else trial_seed(self.seed, trial.number)
        trial.set_user_attr(records.RECIPE, recipe or {**self.recipe, "trial_seed": seed,
                                                       "threads": torch.get_num_threads()})
        self.listener.trial_started(trial.number, hp.as_dict(), is_reference, self.where())
        return hp, is_reference, seed

    def where(self) -> str:
        """Where the trials run, for the live view: the Ray node's address and the device; ""
        for this machine's CPU."""
        return records.place(records.node_of(self.owner), str(self.data.train_x.device))

    def _original(self, trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
        """The interrupted or killed trial this one is the retry of (``records.RETRY_OF``), if any."""
        number = trial.user_attrs.get(records.RETRY_OF)
        if number is None or self.artifacts is None:
            return None
        return next((t for t in trial.study.get_trials(deepcopy=False) if t.number == number), None)

    def _go_on_from(self, trial: optuna.Trial, trainer: Trainer, original: optuna.trial.FrozenTrial
                    ) -> list[dict[str, float]]:
        """Load the original's last saved state; report the epochs it trained as this trial's."""
        done = checkpoint.restore(trainer, original, self.artifacts)
        history = list(original.user_attrs.get(records.HISTORY, []))[:done]
        for row in history:
            trial.report(row["val_accuracy"], row["epoch"] - 1)
        trial.set_user_attr(records.HISTORY, history)
        return history

    def drop_checkpoints(self, trial: optuna.Trial, original: optuna.trial.FrozenTrial | None) -> None:
        """The trial's own checkpoint and its original's, once they are no longer needed."""
        if self.artifacts is None:
            return
        numbers = [trial.number] if records.CHECKPOINT in trial.user_attrs else []
        for number in [*numbers, *([original.number] if original is not None else [])]:
            checkpoint.remove(trial.study, number, self.artifacts)

    def _train(self, trial: optuna.Trial, trainer: Trainer, history: list[dict[str, float]]) -> float:
        recorder = EpochRecorder(trial, self.epochs, self.listener, history)
        clock = CheckpointClock(self.checkpoint_every)
        for epoch in range(len(history), self.epochs):
            if past_deadline(self.deadline, history[-1]["seconds"] if history else None):
                self._stop_at_deadline(trial, trainer, epoch)
            trainer.on_batch = batch_progress(self.listener, [trial.number], epoch + 1, self.epochs,
                                              len(self.data.train_y), trainer.hp.batch_size)
            started = time.perf_counter()
            result = trainer.epoch()
            recorder.record(epoch, result, trainer.lr, time.perf_counter() - started, trainer.micro_batches)
            if clock.due(epoch, self.epochs) and self.artifacts is not None:
                with clock.saving():
                    checkpoint.save(trial, trainer, epoch + 1, self.artifacts)
            if recorder.pruned(epoch, result):
                raise optuna.TrialPruned()
        return history[-1]["val_accuracy"]

    def _stop_at_deadline(self, trial: optuna.Trial, trainer: Trainer, epoch: int) -> None:
        """``--timeout`` comes before the next epoch would end: save, stop the trial and the run."""
        self.timed_out = True
        if self.artifacts is not None:
            checkpoint.save(trial, trainer, epoch, self.artifacts)
        trial.set_user_attr(records.FAIL_REASON, records.TIMED_OUT)
        raise TrialFailed(f"trial {trial.number}: {records.TIMED_OUT}")

    def keep_weights(self, trial: optuna.Trial, model: torch.nn.Module, value: float, reference: bool) -> None:
        """Save the reference's weights and those of a trial that enters the best ``keep``."""
        if self.artifacts is None:
            return
        keep = self.artifacts.keep
        enters = len(self.kept) < keep or value > self.kept[-1][0]
        if not (reference or enters):
            return
        self.artifacts.save(trial, model)
        if enters:
            self.kept.append((value, trial.number))
            self.kept.sort(key=lambda k: rank(*k))
            while len(self.kept) > keep:
                self._displaced.append(self.kept.pop()[1])

    def _did_not_fit(self, trial: optuna.Trial, batch_size: int) -> None:
        """Remembered on the trial, so that later trials on this kind of device draw smaller
        batches (:class:`tuner.search.fits.FitSampler`)."""
        device = device_kind(self.data.train_x.device)
        trial.set_user_attr(records.DOES_NOT_FIT, {"device": device, "batch_size": batch_size})

    def _check_fits(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """After a trial that did not fit: :class:`UsageError` when the space has no smaller batch."""
        if not isinstance(found := trial.user_attrs.get(records.DOES_NOT_FIT), dict):
            return
        limit, number = records.fit_limit(study.get_trials(deepcopy=False), found["device"]) or (0, 0)
        if not smaller_batches(self.space.get("batch_size"), limit):
            raise UsageError(f"{trial.user_attrs.get(records.FAIL_REASON)} on {found['device']}, and the space "
                             f"has no batch size below {limit} (trial {number}): allow smaller ones "
                             "(--space batch_size=8,16) or use a device with more memory")

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: the trial is stored; remove what it displaced (not a reference); stop
        the study when no batch size of the space fits any more."""
        self._check_fits(study, trial)
        if not self._displaced or self.artifacts is None:
            return
        numbers, self._displaced = set(self._displaced), []
        for t in study.get_trials(deepcopy=False):
            if t.number in numbers and not t.user_attrs.get(records.REFERENCE):
                self.artifacts.remove(t)
