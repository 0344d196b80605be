"""A trial's weights: saved, found, checked and tidied through the study's artifact store.

Weights are artifacts of the study, not files at a conventional path. Each kept trial records
``weights = {"artifact_id", "sha256", "bytes", "file"}`` in its user attributes (Optuna's own
artifact metadata sits in its system attributes), so every command finds them through the study.
A file that is missing, empty, or whose sha256 differs from the record is *damaged*: reported by
name, never loaded. Studies written before the store keep a plain path in ``weights``; it is
still read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.artifacts import upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from tuner.errors import WeightsError, message_line
from tuner.runtime.files import copy_into, replaced
from tuner.storage import records
from tuner.storage.stores import cache_folder, open_store, shown, spec_of, store_folder, write_error

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Weights:
    """A trial's weights as found: ``path`` loads with ``torch.load(path, weights_only=True)``
    when ``problem`` is None."""

    trial: int
    path: Path | None
    artifact_id: str | None
    sha256: str | None
    problem: str | None  # "missing", "damaged (...)", "cannot be reached (...)"; None when fine

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.artifact_id, "sha256": self.sha256, "path": str(self.path) if self.path else None,
                "problem": self.problem}

    def describe(self) -> str:
        if self.ok:
            return str(self.path)
        where = self.path or self.artifact_id
        return f"{where}: {self.problem}"


class StudyArtifacts:
    """The weights of one study: save a trial's, find and check them, remove those not kept.

    Args:
        study: The study.
        spec: Where the store is (see the module's docstring).
        db_path: The SQLite file, for ``BESIDE_DB``.
        keep: How many of the best completed trials keep their weights (the reference always does).
    """

    def __init__(self, study: optuna.Study, spec: str, db_path: Path | None, keep: int = 1) -> None:
        self.study, self.spec, self.db_path, self.keep = study, spec, db_path, keep
        self.store = open_store(spec, db_path)
        self.folder = store_folder(spec, db_path)

    @property
    def shown(self) -> str:
        return shown(self.spec, self.db_path)

    # -- writing ---------------------------------------------------------------------------

    def save(self, trial: optuna.Trial, model: torch.nn.Module) -> dict[str, Any]:
        """Upload the model's weights (on the CPU) as the trial's artifact and record it."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        scratch = self.folder if self.folder is not None else cache_folder()
        staged = scratch / f"trial-{trial.number}.pt"  # the artifact's file name
        # Serialised in memory, then written as plain bytes: a full disk is then an OSError with
        # its errno, where torch.save to a file reports it as "enforce fail ... unexpected pos".
        buffer = io.BytesIO()
        import torch  # only the commands that train or load weights pay for importing it

        torch.save(state, buffer)
        data = buffer.getbuffer()
        digest, size = hashlib.sha256(data).hexdigest(), len(data)
        try:
            try:
                scratch.mkdir(parents=True, exist_ok=True)
                with replaced(staged, durable=False) as f:
                    f.write(data)
            except OSError as e:
                raise write_error(scratch, e) from None
            del data
            artifact_id = upload_artifact(artifact_store=self.store, file_path=str(staged),
                                          study_or_trial=trial)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(staged)
        record = {"artifact_id": artifact_id, "sha256": digest, "bytes": size, "file": staged.name}
        trial.set_user_attr(records.WEIGHTS, record)
        return record

    def remove(self, trial: FrozenTrial) -> None:
        record = trial.user_attrs.get(records.WEIGHTS)
        if isinstance(record, dict):
            with contextlib.suppress(ArtifactNotFound, OSError):
                self.store.remove(record["artifact_id"])
        elif isinstance(record, str):  # the layout before the store
            with contextlib.suppress(OSError):
                Path(record).unlink()

    def tidy(self, trials: Iterable[FrozenTrial] | None = None) -> None:
        """Remove the weights of finished trials that no longer qualify. Trials still running
        (another process on a shared study) are left alone."""
        trials = list(self.study.get_trials(deepcopy=False) if trials is None else trials)
        kept = kept_numbers(trials, self.keep)
        for t in trials:
            if t.state.is_finished() and t.number not in kept and t.user_attrs.get(records.WEIGHTS):
                self.remove(t)

    # -- reading ---------------------------------------------------------------------------

    def find(self, trial: FrozenTrial) -> Weights | None:
        """The trial's weights, checked (size and sha256); None when it never kept any."""
        return find(trial, self.store, self.folder)

    def load_state(self, trial: FrozenTrial) -> dict[str, torch.Tensor]:
        weights = self.find(trial)
        if weights is None:
            raise WeightsError(f"trial {trial.number} kept no weights (a study keeps the reference's and its best "
                               f"{self.keep}, see --keep); train its settings again with `tuner optimize --params`")
        if not weights.ok:
            raise WeightsError(f"weights of trial {trial.number} {weights.describe()}")
        return load_state(weights)


def kept_numbers(trials: Iterable[FrozenTrial], keep: int) -> set[int]:
    """The trials whose weights are kept: the ``keep`` best completed ones, and the reference."""
    trials = list(trials)
    kept = {t.number for t in records.best_first(trials)[:keep]}
    kept |= {t.number for t in trials if t.user_attrs.get(records.REFERENCE)}
    return kept


def find(trial: FrozenTrial, store: Any, folder: Path | None) -> Weights | None:
    record = trial.user_attrs.get(records.WEIGHTS)
    if not record:
        return None
    if isinstance(record, str):  # before the store: a path, no checksum
        path = Path(record)
        if not path.exists():
            return Weights(trial.number, path, None, None, "missing")
        problem = "damaged (0 bytes)" if path.stat().st_size == 0 else None
        return Weights(trial.number, path, None, None, problem)
    artifact_id, digest = record["artifact_id"], record["sha256"]
    if folder is not None:
        path = folder / artifact_id
        if not path.exists():
            return Weights(trial.number, path, artifact_id, digest, "missing")
    else:
        path = cache_folder() / f"{artifact_id}.pt"
        if not path.exists():
            try:
                _download(store, artifact_id, path)
            except ArtifactNotFound:
                return Weights(trial.number, None, artifact_id, digest, "missing")
            except Exception as e:  # boto3 and botocore raise many kinds: all mean unreachable
                reason = message_line(e)
                return Weights(trial.number, None, artifact_id, digest, f"cannot be reached ({reason})")
    got, size = _sha256(path)
    if size == 0:
        return Weights(trial.number, path, artifact_id, digest, "damaged (0 bytes)")
    if got != digest:
        return Weights(trial.number, path, artifact_id, digest,
                       f"damaged (sha256 {got[:12]}… is not the stored {digest[:12]}…)")
    return Weights(trial.number, path, artifact_id, digest, None)


def load_state(weights: Weights) -> dict[str, torch.Tensor]:
    """Load checked weights; a file that still does not unpickle as tensors is damaged."""
    assert weights.path is not None
    import torch

    try:
        return torch.load(weights.path, weights_only=True, map_location="cpu")
    except Exception as e:  # pickle, zip and torch errors: all mean the file is not weights
        raise WeightsError(f"weights of trial {weights.trial} at {weights.path} are damaged "
                           f"({type(e).__name__}); re-run the trial with `tuner optimize`") from None


def _download(store: Any, artifact_id: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path, durable=False) as out, contextlib.closing(store.open_reader(artifact_id)) as reader:
        copy_into(reader, out)


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def for_study(study: optuna.Study, db_path: Path | None, keep: int | None = None) -> StudyArtifacts | None:
    """The study's artifacts, or None when it names no store (a server study from before it)."""
    spec = spec_of(study, db_path)
    if spec is None:
        return None
    return StudyArtifacts(study, spec, db_path, keep if keep is not None else study.user_attrs.get(records.KEEP, 1))


def find_weights(trial: FrozenTrial, store: StudyArtifacts | None) -> Weights | None:
    """A trial's weights through the study's store (a path record needs none)."""
    if store is not None:
        return store.find(trial)
    record = trial.user_attrs.get(records.WEIGHTS)
    if isinstance(record, dict):
        return Weights(trial.number, None, record.get("artifact_id"), record.get("sha256"),
                       "cannot be reached (the study names no artifact store)")
    return find(trial, None, None)
