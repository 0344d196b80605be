"""Where a study lives: a file path or database URL made a :class:`Location`, shown without its password.

A bare path given to Optuna is read as a *journal* file, so the ``sqlite:///`` URL is built
here from the path the user types.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy

from tuner.errors import UsageError

STUDIES_DIR = Path("studies")


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
    except Exception:  # not a URL SQLAlchemy can parse: show only its scheme, unless it holds no credentials
        if "@" not in url:
            return url
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


def locate_target(target: str, study_name: str | None = None) -> Location:
    """What ``tuner best DB`` and the other readers take: a file path or a database URL."""
    if "://" in target:
        return locate(study_name or "", storage=target)
    return locate(study_name or "", db=target)
