"""A study's storage opened safely: checked, locked while it is set up, closed at exit, and its
write errors named in one line; a stored study loaded and checked to be one tuner made."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import Any

import optuna
import sqlalchemy

from tuner.errors import StudyError, message_line
from tuner.storage import records
from tuner.storage.location import Location, locate_target, scrub
from tuner.storage.sqlite import (
    BUSY_TIMEOUT_S,
    check_database_file,
    disk_full,
    file_lock,
    still_locked,
    tune_for_writers,
)
from tuner.storage.stale import GRACE_S, HEARTBEAT_S, killed_trial

_CREATE_ATTEMPTS = 5

# Every storage this process opens is closed when it exits, before the interpreter's own
# teardown: the last connection to a SQLite file to close folds the write-ahead log back into
# the file, so that what is left is one self-contained .db a person can copy anywhere (the
# console script freezes the heap at exit, and frozen connections would stay open to the end).
_opened: weakref.WeakSet[optuna.storages.RDBStorage] = weakref.WeakSet()


@atexit.register
def _close_storages() -> None:
    for storage in list(_opened):
        with contextlib.suppress(Exception):  # a server already gone: nothing left to close
            storage.remove_session()
            storage.engine.dispose()


def storage_for(location: Location, *, create: bool, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """An RDB storage; an existing SQLite file is checked first and never 'repaired'.

    ``heartbeat``: for a process that runs trials (see :mod:`tuner.storage.stale`)."""
    beat: dict[str, Any] = {}
    if heartbeat:
        beat = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
                "heartbeat_stale_trial_callback": killed_trial}
    if create and location.db_path is not None:
        try:
            location.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"cannot create the folder {location.db_path.parent} ({e.strerror}); "
                             "give --db a path in a folder you can write") from None
    with file_lock(location.db_path, exclusive=create):
        if location.db_path is not None:
            exists = location.db_path.exists() and location.db_path.stat().st_size > 0
            if exists or not create:
                check_database_file(location.db_path)
        storage = _open_rdb(location, create, beat)
    if create and location.url.startswith("sqlite:"):
        tune_for_writers(storage.engine)
    return storage


def _open_rdb(location: Location, create: bool, beat: dict[str, Any]) -> optuna.storages.RDBStorage:
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(location.url, skip_table_creation=not create,
                                                     engine_kwargs=_engine_kwargs(location), **beat)
            _opened.add(storage)
            break
        except Exception as e:  # SQLAlchemy and Optuna raise many kinds; all mean "cannot open"
            # Another program creating the same new file without tuner's lock (a script calling
            # optuna.load_study on it) races on CREATE TABLE and the schema version row; the
            # loser tries again and finds them made.
            racing = "already exists" in str(e) or "UNIQUE constraint failed: alembic" in str(e)
            if create and racing and attempt + 1 < _CREATE_ATTEMPTS:
                time.sleep(0.1 * (attempt + 1))
                continue
            cause = _innermost(e)
            reason = _reason(cause, location)
            if "locked" in reason:
                raise still_locked(location.shown, reason) from None
            raise StudyError(f"cannot open {location.shown}: {type(cause).__name__}: {reason}") from None
    return storage


def _engine_kwargs(location: Location) -> dict[str, Any]:
    """A SQLite file that another program holds (a script polling the study, another
    terminal's tuner creating it) is waited for, as long as a --jobs worker waits for a write
    (:func:`tuner.storage.sqlite.tune_for_writers`), rather than refused after sqlite3's 5 s."""
    if location.db_path is None:
        return {}
    return {"connect_args": {"timeout": BUSY_TIMEOUT_S}}


@contextlib.contextmanager
def study_lock(location: Location, storage: optuna.storages.RDBStorage) -> Iterator[None]:
    """One process at a time on the study's set-up: flock(2) on a SQLite file's folder, an
    advisory lock on PostgreSQL; other servers (MySQL) go without, and may queue two references.

    Not on the file itself: this process has it open in SQLite by now, and closing any other
    descriptor of a file drops all of the process's POSIX locks on it, SQLite's included."""
    if location.db_path is not None:
        with file_lock(location.db_path.absolute().parent, exclusive=False, folder=True):
            yield
        return
    if storage.engine.dialect.name != "postgresql":
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"tuner:{location.study_name}".encode()).digest()[:8], "big", signed=True)
    with storage.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
            connection.commit()


@contextlib.contextmanager
def written(location: Location) -> Iterator[None]:
    """A write to the study's storage that fails (read-only, disk full) is one line naming the
    database and what to do, not Optuna's "invalid data in the commit" traceback."""
    try:
        yield
    except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError) as e:
        cause = _innermost(e)
        reason = _reason(cause, location)
        if "locked" in reason:
            raise still_locked(location.shown, reason) from None
        if "readonly" in reason or "read-only" in reason:
            raise StudyError(f"{location.shown} is read-only ({reason}); make the file and its folder writable, "
                             "or run on a copy (`tuner best` and `tuner trials` read it as it is)") from None
        full = location.db_path is not None and disk_full(location.db_path.absolute().parent)
        if "disk is full" in reason or "No space" in reason or full:
            where = location.db_path.absolute().parent if location.db_path is not None else location.shown
            raise StudyError(f"no space left for the study in {where} ({reason}); free some and run the "
                             "same command to resume") from None
        raise StudyError(f"cannot write to {location.shown}: {type(cause).__name__}: {reason}") from None


def _innermost(e: BaseException) -> BaseException:
    """The driver's own error under Optuna's and SQLAlchemy's wrappers."""
    seen = set()
    while id(e) not in seen:
        seen.add(id(e))
        nxt = getattr(e, "orig", None) or e.__cause__
        if nxt is None:
            break
        e = nxt
    return e


def _reason(cause: BaseException, location: Location) -> str:
    """The first line of a driver's message (not SQLAlchemy's SQL dump), without the password."""
    return scrub(message_line(cause), location.url) if str(cause).strip() else ""


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    return [s.study_name for s in storage.get_all_studies()]


def load_existing(location: Location, study_name: str | None) -> optuna.Study:
    """Open a stored study for reading; several studies and no ``--study`` is an error."""
    storage = storage_for(location, create=False)
    names = study_names(storage)
    if not names:
        raise StudyError(f"{location.shown} holds no study yet; run `tuner optimize` first")
    if study_name is None:
        if len(names) > 1:
            raise StudyError(
                f"{location.shown} holds {len(names)} studies ({', '.join(names)}); "
                "pick one with --study NAME"
            )
        study_name = names[0]
    if study_name not in names:
        raise StudyError(
            f"no study {study_name!r} in {location.shown}; it holds: {', '.join(names)}"
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    check_tuner_study(study, location)
    return study


def open_study(db: str, study_name: str | None) -> tuple[optuna.Study, Location]:
    """The study a command names: ``db`` is a file path or a database URL."""
    location = locate_target(db, study_name)
    return load_existing(location, study_name), location


def check_tuner_study(study: optuna.Study, location: Location) -> None:
    """Refuse, in one line, a study tuner cannot read truthfully: made by something else
    (several objectives, one that is minimized, no tuner provenance) or with records that are
    not valid JSON."""
    where = f"study {study.study_name!r} in {location.shown}"
    if len(study.directions) > 1:
        raise StudyError(f"{where} has {len(study.directions)} objectives; tuner reads studies that maximize "
                         "validation accuracy, made by `tuner optimize` (open this one with optuna-dashboard)")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise StudyError(f"{where} minimizes its objective; tuner reads studies that maximize validation "
                         "accuracy, made by `tuner optimize` (name a new study with --study NAME)")
    try:
        trials = study.get_trials(deepcopy=False)
        attrs = study.user_attrs
    except ValueError as e:  # json.JSONDecodeError too: Optuna reads each record's JSON
        raise StudyError(f"{where} holds a record that is not valid JSON ({message_line(e)}); it was "
                         "changed by something other than tuner or is damaged: restore it from a backup") from None
    # Studies of early tuner versions may lack the provenance; their trials carry tuner's marks.
    tuners = records.PROVENANCE in attrs or any(records.is_tuner_trial(t) for t in trials)
    if trials and not tuners:  # an empty study is one `tuner optimize` is creating
        raise StudyError(f"{where} was not made by `tuner optimize` (it has no tuner provenance); "
                         "open it with optuna-dashboard or Optuna's API")
