"""Studies and their storage: where a study lives, opening it safely, reading it back.

A bare path given to Optuna is read as a *journal* file, so the ``sqlite:///`` URL is built
here from the path the user types. Before Optuna opens an existing file it is checked to be a
study database, read-only, so that a wrong or corrupt file is reported and left untouched.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import math
import os
import shutil
import sqlite3
import time
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from tuner import artifacts, insight
from tuner.errors import StudyError, UsageError
from tuner.marks import REFERENCE_ATTR
from tuner.proc import PROCESS_ATTR, known_dead

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent creation is then Optuna's own race
    fcntl = None  # type: ignore[assignment]

STUDIES_DIR = Path("studies")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED_TABLES = {"studies", "trials", "trial_values"}


@dataclass(frozen=True)
class Location:
    """Where a study's database lives."""

    url: str
    db_path: Path | None  # None for a non-SQLite --storage URL
    study_name: str

    @property
    def shown(self) -> str:
        """The file, or the URL without its password: what every message and record shows."""
        return str(self.db_path) if self.db_path is not None else hide_password(self.url)


def hide_password(url: str) -> str:
    """``postgresql://u:***@host/db``: SQLAlchemy's own rendering of a URL without its secret."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show only its scheme
        return url.split("://", 1)[0] + "://…" if "://" in url else "…"


def scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (if any) replaced, for a driver's error message."""
    try:
        password = sqlalchemy.engine.make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.resolve()}"


def locate(study_name: str, db: str | None = None, storage: str | None = None) -> Location:
    """``--db PATH`` or ``--storage URL`` or ``studies/<study>.db``."""
    if db and storage:
        raise UsageError("give --db PATH or --storage URL, not both")
    if storage:
        if storage in ("sqlite://", "sqlite:///", "sqlite:///:memory:"):
            raise UsageError(f"--storage {storage} is an in-memory database: it keeps nothing once the run "
                             "ends; give a file, --db PATH or --storage sqlite:///PATH")
        if storage.startswith("sqlite:///"):
            return Location(storage, Path(storage.removeprefix("sqlite:///")), study_name)
        return Location(storage, None, study_name)
    path = Path(db) if db else STUDIES_DIR / f"{study_name}.db"
    return Location(sqlite_url(path), path, study_name)


def disk_full(folder: Path) -> bool:
    """Less than 1 MiB free where ``folder`` is (SQLite's journal files and a trial's rows need more)."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


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
        con = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables >= _REQUIRED_TABLES:
                con.execute("SELECT count(*) FROM trials").fetchone()
                ok = con.execute("PRAGMA quick_check").fetchone()[0]
                if ok != "ok":
                    raise sqlite3.DatabaseError(ok)
        finally:
            con.close()
    except sqlite3.DatabaseError as e:
        if disk_full(path.parent):  # SQLite could not make its -wal and -shm files: not damage
            raise StudyError(f"no space left in {path.absolute().parent} to open {path} ({e}); free some and "
                             "run the same command again") from None
        raise StudyError(f"{path} is corrupt ({e}); restore it from a backup") from None
    if not tables >= _REQUIRED_TABLES:
        raise StudyError(f"{path} is a SQLite database but holds no tuner study; check the path")


# A running trial records a heartbeat this often; one silent for GRACE_S is failed as killed
# (SIGKILL, out of host memory, a lost machine) by the next trial any process starts on the
# study. One write per HEARTBEAT_S, whatever the epoch length; measured cost: docs/benchmarks.md.
HEARTBEAT_S = 15
GRACE_S = 60
KILLED = "its process stopped without a word (killed, or the machine went down)"


def storage_for(location: Location, *, create: bool, heartbeat: bool = False) -> optuna.storages.RDBStorage:
    """An RDB storage; an existing SQLite file is checked first and never 'repaired'.

    ``heartbeat``: for a process that runs trials (see HEARTBEAT_S)."""
    beat: dict[str, Any] = {}
    if heartbeat:
        beat = {"heartbeat_interval": HEARTBEAT_S, "grace_period": GRACE_S,
                "heartbeat_stale_trial_callback": _killed_trial}
    if create and location.db_path is not None:
        try:
            location.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StudyError(f"cannot create the folder {location.db_path.parent} ({e.strerror}); "
                             "give --db a path in a folder you can write") from None
    with _file_lock(location.db_path, exclusive=create):
        if location.db_path is not None:
            exists = location.db_path.exists() and location.db_path.stat().st_size > 0
            if exists or not create:
                check_database_file(location.db_path)
        storage = _open_rdb(location, create, beat)
    if create and location.url.startswith("sqlite:"):
        # Every trial commits a few rows per epoch. In SQLite's default mode each commit is
        # a full fsync; write-ahead logging with synchronous=NORMAL keeps the file consistent
        # through crashes and costs a fraction of that. Read-only commands leave the mode alone.
        sqlalchemy.event.listen(storage.engine, "connect", _fast_sqlite)
        sqlalchemy.event.listen(storage.engine, "begin", _begin_immediate)
        storage.engine.dispose()  # pooled connections were opened without it
    return storage


@contextlib.contextmanager
def _file_lock(path: Path | None, *, exclusive: bool, folder: bool = False) -> Iterator[None]:
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


def _open_rdb(location: Location, create: bool, beat: dict[str, Any]) -> optuna.storages.RDBStorage:
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(location.url, skip_table_creation=not create, **beat)
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
            reason = (str(cause).strip().splitlines() or [""])[0]  # not SQLAlchemy's SQL dump
            reason = scrub(reason, location.url)
            raise StudyError(f"cannot open {location.shown}: {type(cause).__name__}: {reason}") from None
    return storage


@contextlib.contextmanager
def study_lock(location: Location, storage: optuna.storages.RDBStorage) -> Iterator[None]:
    """One process at a time on the study's set-up: flock(2) on a SQLite file's folder, an
    advisory lock on PostgreSQL; other servers (MySQL) go without, and may queue two references.

    Not on the file itself: this process has it open in SQLite by now, and closing any other
    descriptor of a file drops all of the process's POSIX locks on it, SQLite's included."""
    if location.db_path is not None:
        with _file_lock(location.db_path.absolute().parent, exclusive=False, folder=True):
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
        reason = scrub((str(cause).strip().splitlines() or [""])[0], location.url)
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


def _fast_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # --jobs workers and every trial's heartbeat thread write to one file: wait for the lock
    # (30 s) rather than fail a trial with "database is locked" after sqlite3's default 5 s.
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # sqlite3 would BEGIN only before the first write, so Optuna's read-then-write sessions
    # are not atomic: two --jobs workers both read a queued trial as WAITING and both run it
    # (Optuna: "Cannot tell a COMPLETE trial"). SQLAlchemy's recipe: sqlite3 begins nothing,
    # _begin_immediate begins every transaction holding the write lock.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: sqlalchemy.Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _killed_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Optuna has failed a trial whose heartbeat stopped. A killed reference is queued again,
    as an interrupted one is: every study keeps its baseline."""
    if not trial.user_attrs.get(REFERENCE_ATTR):
        return
    others = [t for t in study.get_trials(deepcopy=False)
              if t.user_attrs.get(REFERENCE_ATTR) and t.number != trial.number]
    if all(t.state == TrialState.FAIL for t in others):
        study.enqueue_trial(trial.params, user_attrs={REFERENCE_ATTR: True})


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the running trials whose process is known to be gone (same host, pid not alive)
    at once, instead of after the heartbeat's grace; the numbers failed."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        record = trial.user_attrs.get(PROCESS_ATTR)
        if not known_dead(record):
            continue
        try:  # no fail_reason, as for a trial the heartbeat fails: shown as KILLED
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process failed it first
        failed.append(trial.number)
    return failed


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
        raise StudyError(f"{where} holds a record that is not valid JSON ({str(e).splitlines()[0]}); it was "
                         "changed by something other than tuner or is damaged: restore it from a backup") from None
    # Studies of early tuner versions may lack the provenance; their trials carry tuner's marks.
    tuners = "provenance" in attrs or any(REFERENCE_ATTR in t.user_attrs or "hparams" in t.user_attrs
                                          for t in trials)
    if trials and not tuners:  # an empty study is one `tuner optimize` is creating
        raise StudyError(f"{where} was not made by `tuner optimize` (it has no tuner provenance); "
                         "open it with optuna-dashboard or Optuna's API")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# Each `tuner optimize` on a study records how it ran, under a key of its own ("run:" + start
# time + process id): two terminals resuming one study at once both keep theirs, which one
# list read, extended and written back would not.
RUN_PREFIX = "run:"


def record_run(study: optuna.Study, entry: dict[str, Any]) -> None:
    started = datetime.datetime.now(datetime.UTC)
    study.set_user_attr(f"{RUN_PREFIX}{started.isoformat(timespec='microseconds')}:{os.getpid()}",
                        {"started": started.isoformat(timespec="seconds"), **entry})


def runs(study: optuna.Study) -> list[dict[str, Any]]:
    """Every recorded run of ``tuner optimize`` on the study, oldest first."""
    attrs = study.user_attrs
    return [attrs[k] for k in sorted(k for k in attrs if k.startswith(RUN_PREFIX))]


# ---------------------------------------------------------------------------------------------
# Reading trials back.


@dataclass(frozen=True)
class TrialView:
    number: int
    state: str
    value: float | None
    hparams: dict[str, Any]
    history: list[dict[str, float]]
    duration_s: float | None
    reason: str | None
    reference: bool

    @property
    def epochs_run(self) -> int:
        return len(self.history)


def view(trial: FrozenTrial) -> TrialView:
    attrs = trial.user_attrs
    reason = attrs.get("prune_reason") if trial.state == TrialState.PRUNED else None
    if trial.state == TrialState.FAIL:
        reason = attrs.get("fail_reason") or trial.system_attrs.get("fail_reason") or KILLED
    return TrialView(
        number=trial.number,
        state=trial.state.name,
        value=trial.value if trial.state == TrialState.COMPLETE else None,
        hparams=dict(attrs.get("hparams", trial.params)),
        history=list(attrs.get("history", [])),
        duration_s=trial.duration.total_seconds() if trial.duration else None,
        reason=reason,
        reference=bool(attrs.get(REFERENCE_ATTR)),
    )


def reference_trial(study: optuna.Study) -> FrozenTrial | None:
    """The reference trial; the completed one when an interrupted reference was run again."""
    references = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(REFERENCE_ATTR)]
    done = [t for t in references if t.state == TrialState.COMPLETE]
    return (done or references or [None])[0]


def best_trial(study: optuna.Study) -> FrozenTrial:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet; run `tuner optimize` on it"
        )
    return max(done, key=lambda t: (t.value, -t.number))


def test_accuracies(study: optuna.Study) -> dict[int, float]:
    return {int(k): v for k, v in study.user_attrs.get("test_accuracy", {}).items()}


PAIRED_ATTR = "paired"  # study user attr: examples only the best or only the reference gets right


def difference(best: float | None, reference: float | None, n: int | None,
               paired: dict[str, int] | None = None) -> dict[str, Any] | None:
    """How sure ``best - reference`` (accuracies on the same ``n`` examples) is.

    Paired when the examples each model alone gets right are known (``only_best``,
    ``only_reference``): SE = sqrt(((b + c) / n - d²) / n). Otherwise the two are treated as
    independent binomials, which overstates the error when they get the same examples right.
    Within noise: the difference is under two standard errors. In percentage points."""
    if best is None or reference is None or not n:
        return None
    d = best - reference
    if paired is not None and paired.get("n") == n:
        var = max((paired["only_best"] + paired["only_reference"]) / n - d * d, 0.0) / n
    else:
        paired = None
        var = (best * (1 - best) + reference * (1 - reference)) / n
    se = math.sqrt(var)
    return {"points": 100 * d, "se_points": 100 * se, "examples": n, "example_points": 100 / n,
            "paired": paired is not None, "within_noise": abs(d) < 2 * se or d == 0}


def best_summary(study: optuna.Study, db_path: Path | None = None) -> dict[str, Any]:
    """What ``tuner best --json`` prints. ``weights`` is a local file that loads with
    ``torch.load(path, weights_only=True)`` (fetched into a cache from an object store), or
    None with the reason under ``weights_artifact.problem``."""
    best_frozen = best_trial(study)
    best = view(best_frozen)
    ref = reference_trial(study)
    ref_view = view(ref) if ref is not None else None
    tests = test_accuracies(study)
    store = artifacts.for_study(study, db_path)
    found = artifacts.find_weights(best_frozen, store)
    ref_found = artifacts.find_weights(ref, store) if ref is not None else None
    prov = study.user_attrs.get("provenance", {})
    paired = study.user_attrs.get(PAIRED_ATTR, {})
    if ref_view is None or paired.get("trials") != [best.number, ref_view.number]:
        paired = {}
    val_n = paired.get("validation", {}).get("n") or prov.get("val_examples")
    test_n = paired.get("test", {}).get("n") or prov.get("test_examples")
    return {
        "study": study.study_name,
        "plugin": study.user_attrs.get("provenance", {}).get("plugin"),
        "trial": best.number,
        "value": best.value,
        "params": best.hparams,
        "epochs": best.history,
        "test_accuracy": tests.get(best.number),
        "weights": str(found.path) if found is not None and found.ok else None,
        "weights_artifact": found.as_dict() if found is not None else None,
        "artifacts": store.shown if store is not None else None,
        "reference_trial": ref_view.number if ref_view else None,
        "reference_value": ref_view.value if ref_view else None,
        "reference_test_accuracy": tests.get(ref_view.number) if ref_view else None,
        "reference_weights": str(ref_found.path) if ref_found is not None and ref_found.ok else None,
        "counts": state_counts(study),
        "runs": runs(study),
        "importance": insight.current_importance(study),
        "hints": [h["text"] for h in insight.edge_hints(best_frozen)],
        "validation_examples": val_n,
        "test_examples": test_n,
        # best - reference in points, its standard error, and whether it is within noise
        "difference": {
            "validation": difference(best.value, ref_view.value if ref_view else None, val_n,
                                     paired.get("validation")),
            "test": difference(tests.get(best.number), tests.get(ref_view.number) if ref_view else None,
                               test_n, paired.get("test")),
        },
    }


def select_trials(study: optuna.Study, states: set[str] | frozenset[str] = frozenset(), sort: str = "number",
                  limit: int | None = None) -> list[TrialView]:
    """The trials in ``states`` (all when empty), ordered by ``number``, ``value`` (best first) or
    ``duration`` (longest first), at most ``limit``."""
    views = [view(t) for t in study.get_trials(deepcopy=False)]
    if states:
        views = [v for v in views if v.state in states]
    if sort == "value":
        views.sort(key=lambda v: (v.value is None, -(v.value or 0)))
    elif sort == "duration":
        views.sort(key=lambda v: -(v.duration_s or 0))
    return views[:limit]


def trials_json(study: optuna.Study, views: list[TrialView]) -> dict[str, Any]:
    """What ``tuner trials --json`` prints."""
    rows = [{"number": v.number, "state": v.state, "value": v.value, "params": v.hparams, "epochs": v.history,
             "duration_s": v.duration_s, "reason": v.reason, "reference": v.reference} for v in views]
    return {"study": study.study_name, "counts": state_counts(study), "trials": rows}


def open_study(db: str, study_name: str | None) -> tuple[optuna.Study, Location]:
    """The study a command names: ``db`` is a file path or a database URL."""
    location = locate(study_name or "", storage=db) if "://" in db else locate(study_name or "", db=db)
    return load_existing(location, study_name), location


#: ``--state`` names, as a person types them, and the trial states they mean.
STATE_NAMES = {"complete": "COMPLETE", "completed": "COMPLETE", "pruned": "PRUNED", "fail": "FAIL",
               "failed": "FAIL", "running": "RUNNING"}


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts
