"""One trial: sample hyperparameters, build the model, train epoch by epoch, report, prune.

Per epoch the trial stores one history row and one intermediate value (two storage writes);
nothing is written per batch.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch

from tuner.contract import Architecture, Hyperparameters, Param
from tuner.data import PreparedData
from tuner.engine import EpochResult, Trainer
from tuner.errors import TrialFailed, UsageError
from tuner.space import fixed_params_for, hyperparameters, sample, sample_reference

REFERENCE_ATTR = "reference"  # user attr set on the enqueued reference trial


class Listener(Protocol):
    """What the console hears from a running study (the core never imports rich)."""

    def trial_started(self, number: int, hp: dict[str, Any], reference: bool) -> None: ...

    def epoch_done(self, number: int, epoch: int, epochs: int, result: EpochResult) -> None: ...


class _Silent:
    def trial_started(self, number: int, hp: dict[str, Any], reference: bool) -> None:
        pass

    def epoch_done(self, number: int, epoch: int, epochs: int, result: EpochResult) -> None:
        pass


def enqueue_reference(study: optuna.Study, reference: Hyperparameters, space: dict[str, Param]) -> None:
    """Queue the architecture's hand-picked settings as the next trial (trial 0 of a new study)."""
    study.enqueue_trial(fixed_params_for(reference, space), user_attrs={REFERENCE_ATTR: True})


def trial_seed(study_seed: int, number: int) -> int:
    return study_seed * 100_003 + number


@dataclass
class Objective:
    """The function ``study.optimize`` calls once per trial.

    Args:
        arch: The architecture plugin.
        data: Prepared tensors on the device.
        space: The study's search space.
        epochs: Epochs per trial (the reference trial too, so the comparison is fair).
        seed: The study's seed; trial ``n`` seeds its weights and batch order from it.
        weights_dir: Where the reference's and the best trial's weights are written.
        best_value: Best value already stored (resumed study), to know when to save weights.
        best_weights: That trial's weights file, deleted when a better trial replaces it.
        reference_weights: The reference trial's weights file, never deleted.
        listener: Receives progress events.
        compile: ``torch.compile`` each trial's model (``--compile``).
    """

    arch: Architecture
    data: PreparedData
    space: dict[str, Param]
    epochs: int
    seed: int
    weights_dir: Path
    best_value: float | None = None
    best_weights: Path | None = None
    reference_weights: Path | None = None
    listener: Listener = field(default_factory=_Silent)
    compile: bool = False

    def hyperparameters_for(self, trial: optuna.Trial) -> tuple[Hyperparameters, bool]:
        reference = self.arch.reference
        if trial.user_attrs.get(REFERENCE_ATTR) and reference is not None:
            # Train with the reference itself, whatever the space can express of it.
            sample_reference(trial, self.space, reference)
            return hyperparameters({}, base=reference), True
        return hyperparameters(sample(trial, self.space)), False

    def __call__(self, trial: optuna.Trial) -> float:
        trainer = None
        try:
            hp, is_reference = self.hyperparameters_for(trial)
            trial.set_user_attr("hparams", hp.as_dict())
            self.listener.trial_started(trial.number, hp.as_dict(), is_reference)
            torch.manual_seed(trial_seed(self.seed, trial.number))
            model = self.arch.build(self.data.shape, hp)
            trainer = Trainer(model, hp, self.data, seed=trial_seed(self.seed, trial.number),
                              compile=self.compile)
            value = self._train(trial, trainer)
            self._keep_weights(trial, trainer, value, is_reference)
            return value
        except torch.cuda.OutOfMemoryError as e:
            del trainer
            gc.collect()
            torch.cuda.empty_cache()
            detail = str(e).split(".")[0].strip() or "CUDA out of memory"
            reason = f"{detail} (batch_size={hp.batch_size})"
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason) from e
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", "interrupted")
            raise
        except (TrialFailed, optuna.TrialPruned):
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            # Stored so that a failed trial always says why (one without a reason was killed).
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {first}" if first else type(e).__name__)
            if self.compile and type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
                # Not this trial's fault: every trial would fail the same way.
                raise UsageError(f"--compile: torch.compile failed ({type(e).__name__}: {first}); "
                                 "run without --compile") from e
            raise

    def _train(self, trial: optuna.Trial, trainer: Trainer) -> float:
        history: list[dict[str, float]] = []
        for epoch in range(self.epochs):
            started = time.perf_counter()
            result = trainer.epoch()
            if not math.isfinite(result.train_loss):
                reason = f"training loss became {result.train_loss} in epoch {epoch + 1}"
                trial.set_user_attr("fail_reason", reason)
                raise TrialFailed(reason)
            history.append({
                "epoch": epoch + 1,
                "train_loss": result.train_loss,
                "val_loss": result.val_loss,
                "val_accuracy": result.val_accuracy,
                "lr": result.lr,
                "seconds": round(time.perf_counter() - started, 4),
            })
            trial.set_user_attr("history", history)
            trial.report(result.val_accuracy, epoch)
            self.listener.epoch_done(trial.number, epoch + 1, self.epochs, result)
            # After the last epoch the work is done: completing costs nothing and tells more.
            if epoch + 1 < self.epochs and trial.should_prune():
                trial.set_user_attr(
                    "prune_reason",
                    f"val {100 * result.val_accuracy:.2f}% at epoch {epoch + 1} below the pruner's bar",
                )
                raise optuna.TrialPruned()
        return history[-1]["val_accuracy"]

    def _keep_weights(self, trial: optuna.Trial, trainer: Trainer, value: float, reference: bool) -> None:
        """Save the reference's weights and each new best's; drop the best they replace."""
        new_best = self.best_value is None or value > self.best_value
        if not (reference or new_best):
            return
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        path = self.weights_dir / f"trial-{trial.number}.pt"
        state = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        torch.save(state, path)
        trial.set_user_attr("weights", str(path.resolve()))
        if reference:
            self.reference_weights = path
        if new_best:
            old = self.best_weights
            if old is not None and old not in (path, self.reference_weights) and old.exists():
                old.unlink()
            self.best_value, self.best_weights = value, path
