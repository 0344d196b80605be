"""Where a study's artifact store is, and the stores: a folder written atomically, or an S3 bucket.

Where the store is, is a study setting (``records.STORE``):

- a SQLite study's default is a folder beside the file, named after it: ``studies/a.db`` ->
  ``studies/a.artifacts/``, stored as ``BESIDE_DB`` so that the pair can be moved or copied
  together; two databases never share one.
- ``--artifacts DIR`` stores an absolute folder (a shared mount for workers on many machines),
  ``--artifacts s3://bucket`` an S3-compatible bucket (``tuner[s3]``; credentials come from
  boto3's usual environment, never from the study).

Writes to a folder are atomic (temporary file, fsync, rename).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any, BinaryIO

import optuna
from optuna.artifacts import FileSystemArtifactStore

from tuner.errors import UsageError, WeightsError
from tuner.runtime.files import copy_into, replaced
from tuner.runtime.folders import cache_root
from tuner.storage import records

BESIDE_DB = "beside-db"  # stored value: <db file without .db>.artifacts/


def default_spec(db_path: Path | None) -> str | None:
    """``BESIDE_DB`` for a SQLite study; None (must be chosen) for a server database."""
    return BESIDE_DB if db_path is not None else None


def spec_for_option(option: str) -> str:
    """What ``--artifacts`` stores: an absolute folder, or an ``s3://`` URL as given."""
    if not option.strip():
        raise UsageError("--artifacts is empty; give a folder or an s3://bucket URL")
    if "://" in option:
        if not option.startswith("s3://") or not option.removeprefix("s3://").strip("/"):
            raise UsageError(f"--artifacts {option}: give a folder or an s3://bucket[/prefix] URL")
        return option.rstrip("/")
    return str(Path(option).expanduser().absolute())


def store_folder(spec: str, db_path: Path | None) -> Path | None:
    """The local folder a spec names (None for an object store)."""
    if spec == BESIDE_DB:
        assert db_path is not None, "BESIDE_DB is only stored for SQLite studies"
        return db_path.absolute().with_suffix(".artifacts")
    if spec.startswith("s3://"):
        return None
    return Path(spec)


def shown(spec: str, db_path: Path | None) -> str:
    folder = store_folder(spec, db_path)
    return f"{folder}/" if folder is not None else spec


class AtomicFileSystemStore(FileSystemArtifactStore):
    """Optuna's folder store, but a reader never sees half a file: write a temporary file in
    the same folder, fsync it, rename it over the final name, fsync the folder."""

    def __init__(self, base_path: Path) -> None:
        super().__init__(base_path)
        self.base_path = base_path

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        final = self._get_filepath(artifact_id)
        try:
            self.base_path.mkdir(parents=True, exist_ok=True)
            with replaced(final) as f:
                copy_into(content_body, f)
            _fsync_folder(self.base_path)
        except OSError as e:
            raise write_error(self.base_path, e) from None


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_error(folder: Path, e: OSError) -> WeightsError:
    if e.errno == errno.ENOSPC:
        why = "the disk is full"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "it is read-only"
    else:
        why = e.strerror or str(e)
    return WeightsError(f"cannot write weights to {folder}/ ({why}); free space or give --artifacts "
                        "a folder you can write")


def open_store(spec: str, db_path: Path | None) -> Any:
    """The artifact store a spec names."""
    folder = store_folder(spec, db_path)
    if folder is not None:
        return AtomicFileSystemStore(folder)
    bucket, _, prefix = spec.removeprefix("s3://").partition("/")
    try:
        import boto3  # noqa: F401  (optional extra)
    except ImportError:
        raise UsageError(f"{spec}: an s3:// store needs boto3; pip install 'tuner[s3]'") from None
    store = optuna.artifacts.Boto3ArtifactStore(bucket)
    return _Prefixed(store, prefix) if prefix else store


class _Prefixed:
    """An object store whose keys live under ``prefix/`` (one bucket, several studies)."""

    def __init__(self, store: Any, prefix: str) -> None:
        self.store, self.prefix = store, prefix.strip("/")

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self.store.open_reader(f"{self.prefix}/{artifact_id}")

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self.store.write(f"{self.prefix}/{artifact_id}", content_body)

    def remove(self, artifact_id: str) -> None:
        self.store.remove(f"{self.prefix}/{artifact_id}")


def cache_folder() -> Path:
    """Where weights fetched from an object store are kept: one file per artifact id."""
    return cache_root() / "artifacts"


def spec_of(study: optuna.Study, db_path: Path | None) -> str | None:
    """The store a study names; a study from before the store: the SQLite default."""
    return study.user_attrs.get(records.STORE) or default_spec(db_path)


def choose_spec(option: str | None, stored: str | None, db_path: Path | None, fallback_folder: Path) -> str:
    """The store for ``tuner optimize``: the stored one (asking for another is an error), else
    ``--artifacts``, else the default (``fallback_folder`` for a server database)."""
    asked = spec_for_option(option) if option is not None else None
    if stored is not None:
        if asked is not None and asked != stored:
            raise UsageError(f"this study keeps its weights in {shown(stored, db_path)}; leave out --artifacts "
                             "or give that one to resume")
        return stored
    return asked or default_spec(db_path) or spec_for_option(str(fallback_folder))
