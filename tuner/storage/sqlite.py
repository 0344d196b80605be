"""A SQLite study file: checked read-only before Optuna opens it, locked while it is made, and
opened with the settings that make many writers safe and cheap.

Before Optuna opens an existing file it is checked to be a study database, so that a wrong or
corrupt file is reported and left untouched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy

from tuner.errors import StudyError

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent creation is then Optuna's own race
    fcntl = None  # type: ignore[assignment]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED_TABLES = {"studies", "trials", "trial_values"}
BUSY_TIMEOUT_S = 30  # how long a connection waits for another's lock on the file


def disk_full(folder: Path) -> bool:
    """Less than 1 MiB free where ``folder`` is (SQLite's journal files and a trial's rows need more)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def folder_writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried: root ignores permission bits, not chattr +i)."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".tuner-probe-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def check_database_file(path: Path) -> None:
    """Raise :class:`StudyError` unless ``path`` is a readable study database. Read-only."""
    if not path.exists():
        raise StudyError(f"{path} does not exist; check the path, or create it with `tuner optimize`")
    if not path.is_file():
        raise StudyError(f"{path} is not a file; give the study's .db file")
    with path.open("rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise StudyError(f"{path} is not a SQLite database (not a tuner study); check the path")
    try:
        tables = _tables_checked(path)
    except sqlite3.DatabaseError as e:
        if "locked" in str(e):  # held all along by another program: nothing is wrong with the file
            raise still_locked(str(path), str(e)) from None
        folder = path.absolute().parent
        if disk_full(folder):  # SQLite could not make its -wal and -shm files: not damage
            raise StudyError(f"no space left in {folder} to open {path} ({e}); free some and "
                             "run the same command again") from None
        if not folder_writable(folder):  # the same: a sound file SQLite cannot open beside itself
            raise StudyError(f"{path} is in a read-only folder, {folder} ({e}): SQLite writes its journal "
                             "beside the file; make the folder writable, or copy the study to one that is") from None
        raise StudyError(f"{path} is corrupt ({e}); restore it from a backup") from None
    if not tables >= _REQUIRED_TABLES:
        raise StudyError(f"{path} is a SQLite database but holds no tuner study; check the path")


def still_locked(shown: str, reason: str) -> StudyError:
    return StudyError(f"{shown} stayed locked by another program for {BUSY_TIMEOUT_S} s ({reason}); "
                      "let it finish, or stop it, and run the same command again")


def _tables_checked(path: Path) -> set[str]:
    """The file's tables, after SQLite's quick check of a study's (raises DatabaseError)."""
    con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables >= _REQUIRED_TABLES:
            con.execute("SELECT count(*) FROM trials").fetchone()
            ok = con.execute("PRAGMA quick_check").fetchone()[0]
            if ok != "ok":
                raise sqlite3.DatabaseError(ok)
        return tables
    finally:
        con.close()


@contextlib.contextmanager
def file_lock(path: Path | None, *, exclusive: bool, folder: bool = False) -> Iterator[None]:
    """While a process creates or opens a study file: an exclusive lock to create (the first
    of two terminals makes the tables, the second finds them), a shared one to open (a reader
    never sees a half-made file). flock(2), which SQLite's own fcntl locks do not notice.
    ``folder``: lock the folder ``path`` exclusively (it is opened read-only)."""
    if path is None or fcntl is None:
        yield
        return
    try:
        flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY  # O_CREAT never truncates
        fd = os.open(path, os.O_RDONLY if folder else flags, 0o644)
    except OSError:  # missing, a folder, no permission: the checks after say which, clearly
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive or folder else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def tune_for_writers(engine: sqlalchemy.Engine) -> None:
    """Every trial commits a few rows per epoch. In SQLite's default mode each commit is a full
    fsync; write-ahead logging with synchronous=NORMAL keeps the file consistent through crashes
    and costs a fraction of that. Read-only commands leave the mode alone."""
    sqlalchemy.event.listen(engine, "connect", _fast_sqlite)
    sqlalchemy.event.listen(engine, "begin", _begin_immediate)
    engine.dispose()  # pooled connections were opened without it


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # --jobs workers and every trial's heartbeat thread write to one file: wait for the lock
    # (30 s) rather than fail a trial with "database is locked" after sqlite3's default 5 s.
    # First: switching a new file to WAL waits for every reader (a script polling the study).
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # sqlite3 would BEGIN only before the first write, so Optuna's read-then-write sessions
    # are not atomic: two --jobs workers both read a queued trial as WAITING and both run it
    # (Optuna: "Cannot tell a COMPLETE trial"). SQLAlchemy's recipe: sqlite3 begins nothing,
    # _begin_immediate begins every transaction holding the write lock.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: sqlalchemy.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
