"""Where an after-the-study command may write: never over a study, its artifacts, or a file it did
not make; always atomically (a temporary file beside the target, then a rename); and every
file-system error in one line naming the path and what to do."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

import optuna

from tuner.errors import UsageError
from tuner.runtime.files import replaced
from tuner.storage.stores import spec_of, store_folder


def study_files(study: optuna.Study, db_path: Path | None) -> list[Path]:
    """The files and folders that are the study: its database (and SQLite's -wal and -shm beside
    it) and the folder of its artifact store."""
    found = []
    if db_path is not None:
        found += [db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-shm"), Path(f"{db_path}-journal")]
    spec = spec_of(study, db_path)
    folder = store_folder(spec, db_path) if spec is not None else None
    if folder is not None:
        found.append(folder)
    return [p.absolute() for p in found]


def refuse_study_files(target: Path, protected: Iterable[Path], option: str = "-o") -> None:
    """A target that is (or is inside) one of the study's own files is refused in one line."""
    here = target.absolute()
    for path in protected:
        if here == path or path in here.parents or _same_file(here, path):
            raise UsageError(f"{option} {target} is part of the study ({path}); writing there would destroy it: "
                             "give a path outside the study's files")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def os_error(path: Path, e: OSError, what: str = "write") -> UsageError:
    """An OSError while writing ``path``, as one line: what went wrong and what to do."""
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = "it is read-only"
    elif e.errno == errno.ENOSPC:
        why = "the disk is full"
    elif e.errno in (errno.ENOTDIR, errno.EEXIST) or isinstance(e, NotADirectoryError | FileExistsError):
        why = "a part of the path is a file, not a folder"
    else:
        why = e.strerror or type(e).__name__
    return UsageError(f"cannot {what} {path} ({why}); give -o a path in a folder you can write")


def make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise os_error(folder, e, "create the folder") from None


def write_atomic(path: Path, text: str) -> None:
    """``path`` holds ``text`` whole, or is as it was: written beside it, then renamed over it."""
    make_folder(path.parent)
    try:
        with replaced(path) as f:
            f.write(text.encode("utf-8"))
    except OSError as e:
        raise os_error(path, e) from None


def made_by_tuner(path: Path, marker: str) -> bool:
    """Whether an existing file carries ``marker`` near its start (a file tuner wrote before)."""
    try:
        with path.open("rb") as f:
            return marker.encode() in f.read(4096)
    except OSError:
        return False

