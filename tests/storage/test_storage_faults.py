"""A study whose disk is read-only or full: one line saying which, nothing stored lost, no trial
left running, and `best`/`trials` still read it. Made for real: an immutable file (chattr +i,
which binds root too, as CI runs), a small tmpfs filled to the brim, and another program's lock
on the file (waited for, then one line)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from helpers import TUNER, digest, immutable, one_error_line, run_tuner

pytestmark = pytest.mark.reliability  # docs/reliability.md: every fault and bad input

SHORT = ["--plugin", "mlp-digits", "--epochs", "1", "--quiet", "--pruner", "none"]


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode:
        pytest.skip("mounting a tmpfs is not possible here (needs root with CAP_SYS_ADMIN)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(disk: Path) -> None:
    """Take every free byte."""
    with open(disk / "filler", "wb", buffering=0) as f:
        for chunk in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while f.write(b"\0" * chunk):
                    pass


def states(db: Path) -> list[str]:
    return [t.state.name for t in optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}").trials]


@pytest.mark.slow
def test_a_read_only_database_is_read_and_refuses_trials_in_one_line(tmp_path):
    db = tmp_path / "studies" / "r.db"
    run_tuner("optimize", *SHORT, "--trials", "2", "--db", str(db), cwd=tmp_path, check=True)
    before = digest(db)
    with immutable(db):
        assert "best vs hand-picked reference" in run_tuner("best", str(db), cwd=tmp_path, check=True).stdout
        assert run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout.startswith("{")
        assert "2 complete" in run_tuner("trials", str(db), cwd=tmp_path, check=True).stdout
        line = one_error_line(run_tuner("optimize", *SHORT, "--trials", "1", "--db", str(db), cwd=tmp_path))
        assert f"{db} is read-only" in line and "tuner best" in line
    assert digest(db) == before and states(db) == ["COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_weights_on_a_full_disk_fail_the_trial_in_one_line_and_the_study_resumes(tmp_path):
    db = tmp_path / "studies" / "s.db"
    with small_disk(tmp_path / "disk", "16m") as disk:
        fill(disk)
        proc = run_tuner("optimize", *SHORT, "--trials", "2", "--db", str(db), "--artifacts", str(disk / "w"),
                         cwd=tmp_path)
        line = one_error_line(proc)
        assert f"cannot write weights to {disk / 'w'}/ (the disk is full)" in line
        trial = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}").trials[0]
        assert trial.state.name == "FAIL" and "the disk is full" in trial.user_attrs["fail_reason"]
        (disk / "filler").unlink()
        run_tuner("optimize", *SHORT, "--trials", "2", "--db", str(db), cwd=tmp_path, check=True)
        assert "RUNNING" not in states(db) and states(db).count("COMPLETE") == 2
        assert run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout.startswith("{")


@pytest.mark.slow
def test_a_database_on_a_full_disk_is_one_line_and_stays_readable(tmp_path):
    with small_disk(tmp_path / "disk", "2m") as disk:
        db = disk / "s.db"
        run_tuner("optimize", *SHORT, "--trials", "2", "--db", str(db), "--artifacts", str(tmp_path / "w"),
                  cwd=tmp_path, check=True)
        fill(disk)
        proc = run_tuner("optimize", *SHORT, "--trials", "30", "--db", str(db), cwd=tmp_path)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "no space left" in one_error_line(proc)
        # SQLite cannot even make the files it reads through: that is said, not "corrupt".
        assert "no space left" in one_error_line(run_tuner("best", str(db), cwd=tmp_path))
        (disk / "filler").unlink()
        assert states(db)[:2] == ["COMPLETE", "COMPLETE"]  # nothing stored was lost
        assert run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout.startswith("{")
        run_tuner("optimize", *SHORT, "--trials", "1", "--db", str(db), cwd=tmp_path, check=True)
        assert "RUNNING" not in states(db)  # a trial the full disk left running is failed on resume


@contextlib.contextmanager
def held(db: Path, how: str) -> Iterator[None]:
    """Another program's transaction on the file: ``BEGIN`` plus a read (a script polling the
    study, which blocks only writers and a change of journal mode) or ``BEGIN EXCLUSIVE``."""
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute(how)
        con.execute("SELECT count(*) FROM trials").fetchone()
        yield
    finally:
        con.execute("COMMIT")
        con.close()


def in_rollback_mode(db: Path) -> None:
    """As a study that plain Optuna made (tuner's own files are in write-ahead-log mode)."""
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    con.close()


@pytest.mark.slow
def test_a_study_another_program_reads_is_waited_for_not_refused(tmp_path):
    db = tmp_path / "studies" / "p.db"
    run_tuner("optimize", *SHORT, "--trials", "1", "--db", str(db), cwd=tmp_path, check=True)
    in_rollback_mode(db)
    env = {**os.environ, "TUNER_OFFLINE": "1", "TUNER_DATA_DIR": str(tmp_path / "data")}
    with held(db, "BEGIN"):  # for 15 s: sqlite3's own wait (5 s) would have refused
        proc = subprocess.Popen([TUNER, "optimize", *SHORT, "--trials", "1", "--db", str(db)], cwd=tmp_path,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(15)
        assert proc.poll() is None, proc.communicate()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert states(db) == ["COMPLETE", "COMPLETE"]


@pytest.mark.slow
def test_a_study_locked_for_good_is_one_line_and_left_as_it_was(tmp_path):
    db = tmp_path / "studies" / "x.db"
    run_tuner("optimize", *SHORT, "--trials", "1", "--db", str(db), cwd=tmp_path, check=True)
    in_rollback_mode(db)
    before = digest(db)
    with held(db, "BEGIN EXCLUSIVE"):
        line = one_error_line(run_tuner("optimize", *SHORT, "--trials", "1", "--db", str(db), cwd=tmp_path))
    assert f"{db} stayed locked by another program for 30 s" in line and "run the same command again" in line
    assert digest(db) == before and states(db) == ["COMPLETE"]
