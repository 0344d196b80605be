"""A running trial's state saved at an epoch's end through the study's artifact store, and loaded
again by its retry, so that an interrupted or killed trial goes on from its last saved epoch.

What is saved is all a seeded trial's next epoch depends on: the model, the optimizer, the
scheduler, the batch order's generator, torch's global generator (dropout masks) and the epoch;
the history rows are on the trial itself. Two files per trial, written in turn (the folder store
writes beside one, then renames), and the trial records which one holds which epoch
(``records.CHECKPOINT``) after it is written: a trial stopped between the two (the file of a
new epoch written, its record not yet: a Ray actor killed by Ctrl-C) still records a file whose
hash matches, the one before. A retry is queued by :mod:`tuner.study.prepare` with
``records.RETRY_OF``; it loads the state, reports the epochs already trained, and trains on.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from typing import TYPE_CHECKING, Any

import optuna
import torch
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from tuner.errors import WeightsError
from tuner.storage import records
from tuner.training.loop import Trainer

if TYPE_CHECKING:
    from tuner.storage.weights import StudyArtifacts


SLOTS = (0, 1)


def _artifact_id(study: optuna.Study, number: int, slot: int | None) -> str:
    """A fixed name per trial and slot, so each save replaces the one before last (no Optuna
    artifact record each epoch); the study's name in it, since several studies may share one
    store. Slot None: the one file per trial of studies made before the slots."""
    tail = "" if slot is None else f"-{slot}"
    return f"checkpoint-{hashlib.sha256(study.study_name.encode()).hexdigest()[:16]}-trial-{number}{tail}.pt"


def save(trial: optuna.Trial, trainer: Trainer, epoch: int, artifacts: StudyArtifacts) -> dict[str, Any]:
    """Save ``trainer``'s state after ``epoch`` (1-based) epochs, replacing the trial's last one."""
    state = {
        "epoch": epoch,
        "model": {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()},
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "generator": trainer.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(trainer.device) if trainer.device.type == "cuda" else None,
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    last = trial.user_attrs.get(records.CHECKPOINT)
    slot = 1 - last.get("slot", 1) if isinstance(last, dict) else 0  # never the file the record names
    artifact_id = _artifact_id(trial.study, trial.number, slot)
    artifacts.store.write(artifact_id, io.BytesIO(data))
    record = {"artifact_id": artifact_id, "epoch": epoch, "sha256": hashlib.sha256(data).hexdigest(), "slot": slot}
    trial.set_user_attr(records.CHECKPOINT, record)
    return record


def restore(trainer: Trainer, original: FrozenTrial, artifacts: StudyArtifacts) -> int:
    """Load ``original``'s saved state into ``trainer``; the number of epochs it had trained."""
    record = original.user_attrs.get(records.CHECKPOINT)
    if not isinstance(record, dict):
        raise WeightsError(f"trial {original.number} saved no checkpoint to go on from")
    try:
        with contextlib.closing(artifacts.store.open_reader(record["artifact_id"])) as reader:
            data = reader.read()
    except (ArtifactNotFound, OSError) as e:
        raise WeightsError(f"the checkpoint of trial {original.number} cannot be read ({type(e).__name__})") from None
    if hashlib.sha256(data).hexdigest() != record["sha256"]:
        raise WeightsError(f"the checkpoint of trial {original.number} is damaged (its sha256 differs)")
    state = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")  # tensors only: nothing runs
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], trainer.device)
    return int(state["epoch"])


def remove(study: optuna.Study, number: int, artifacts: StudyArtifacts) -> None:
    """The trial's checkpoints, no longer needed (it finished, or its retry did)."""
    for slot in (*SLOTS, None):
        with contextlib.suppress(ArtifactNotFound, OSError):
            artifacts.store.remove(_artifact_id(study, number, slot))
