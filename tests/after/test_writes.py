"""What report and export may write: never over a study, its artifacts or a file they did not make;
a folder holds one consistent export; every file-system error is one line. Made for real: the
study's own files as targets, immutable folders (chattr +i binds root too), a path under a file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import digest, immutable, lenet_digits_db, need_extra, new_study, one_error_line, run_tuner

pytestmark = [pytest.mark.reliability, pytest.mark.slow]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return new_study(tmp_path_factory, "writes", "optimize", "--plugin", "lenet-digits", "--trials", "3",
                     "--epochs", "1", "--quiet")


def test_report_never_writes_over_the_study_or_a_file_it_did_not_make(study_dir):
    db = lenet_digits_db(study_dir)
    before = digest(db)
    artifacts = db.with_suffix(".artifacts")
    notes = study_dir / "notes.txt"
    notes.write_text("mine\n")
    for target in (db, Path(f"{db}-wal"), artifacts / "report.html", notes):
        line = one_error_line(run_tuner("report", str(db), "-o", str(target), cwd=study_dir))
        assert str(target) in line, line
    assert digest(db) == before and notes.read_text() == "mine\n"
    assert "best vs hand-picked reference" in run_tuner("best", str(db), cwd=study_dir, check=True).stdout
    report = study_dir / "r.html"
    run_tuner("report", str(db), "-o", str(report), cwd=study_dir, check=True)
    run_tuner("report", str(db), "-o", str(report), cwd=study_dir, check=True)  # its own earlier report: replaced
    assert not [p for p in study_dir.iterdir() if p.name.startswith(".r.html")], "no temporary file left behind"


def test_file_system_errors_of_report_and_export_are_one_line(study_dir, tmp_path):
    db = lenet_digits_db(study_dir)
    plain = tmp_path / "plain-file"
    plain.write_text("x")
    line = one_error_line(run_tuner("report", str(db), "-o", str(plain / "r.html"), cwd=study_dir))
    assert str(plain) in line and "not a folder" in line
    line = one_error_line(run_tuner("export", str(db), "--format", "torchscript", "-o", str(plain / "m"),
                                    cwd=study_dir))
    assert str(plain) in line and "not a folder" in line
    locked = tmp_path / "locked"
    locked.mkdir()
    with immutable(locked):
        line = one_error_line(run_tuner("report", str(db), "-o", str(locked / "r.html"), cwd=study_dir))
        assert "read-only" in line and str(locked) in line
        line = one_error_line(run_tuner("export", str(db), "--format", "torchscript", "-o", str(locked / "m"),
                                        cwd=study_dir))
        assert "read-only" in line and str(locked) in line
    assert list(locked.iterdir()) == []


def test_an_export_folder_holds_one_consistent_export(study_dir, tmp_path):
    need_extra("onnxruntime", "onnx")
    db, out = lenet_digits_db(study_dir), tmp_path / "model"
    run_tuner("export", str(db), "--format", "torchscript", "-o", str(out), cwd=study_dir, check=True)
    run_tuner("export", str(db), "--format", "onnx", "-o", str(out), "--force", cwd=study_dir, check=True)
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]
    assert json.loads((out / "model.json").read_text())["format"] == "onnx"
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "model.pt").write_bytes(b"someone else's model")
    line = one_error_line(run_tuner("export", str(db), "--format", "torchscript", "-o", str(foreign), "--force",
                                    cwd=study_dir))
    assert "no tuner export made" in line
    assert (foreign / "model.pt").read_bytes() == b"someone else's model"
    line = one_error_line(run_tuner("export", str(db), "--format", "torchscript", "-o",
                                    str(db.with_suffix(".artifacts")), cwd=study_dir))
    assert "part of the study" in line


def test_a_study_in_a_read_only_folder_is_called_read_only_not_corrupt(study_dir, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "s.db"
    shutil.copy(lenet_digits_db(study_dir), db)
    before = digest(db)
    with immutable(folder):
        line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--db", str(db), "--trials", "1",
                                        "--quiet", cwd=study_dir))
        assert "read-only" in line and "corrupt" not in line and "backup" not in line, line
    assert digest(db) == before
