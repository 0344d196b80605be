"""Bad input: one `error:` line, a non-zero exit, no traceback, and nothing stored changed."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

import optuna
import pytest
from helpers import one_error_line, run_tuner

pytestmark = pytest.mark.reliability  # docs/reliability.md: every fault and bad input


def digest(path: Path) -> str:
    """The database's content, its write-ahead log included (studies use WAL mode)."""
    parts = [p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()]
    return hashlib.sha256(b"".join(parts)).hexdigest()


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A small real study database to be left untouched by every failing command."""
    cwd = tmp_path_factory.mktemp("stored")
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", "--epochs", "1", "--quiet",
              cwd=cwd, check=True)
    return cwd / "studies" / "mlp-digits.db"


@pytest.fixture
def db(stored, tmp_path) -> Path:
    copy = tmp_path / "studies" / "mlp-digits.db"
    copy.parent.mkdir()
    shutil.copy(stored, copy)
    return copy


@pytest.mark.slow
def test_missing_file(tmp_path):
    for command in ("best", "trials"):
        line = one_error_line(run_tuner(command, "nope.db", cwd=tmp_path))
        assert "nope.db does not exist" in line
    assert not (tmp_path / "nope.db").exists()  # not created as a side effect


@pytest.mark.slow
def test_a_file_that_is_not_a_database(tmp_path):
    (tmp_path / "notes.db").write_text("hello\n")
    line = one_error_line(run_tuner("best", "notes.db", cwd=tmp_path))
    assert "not a SQLite database" in line
    assert (tmp_path / "notes.db").read_text() == "hello\n"
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--db", "notes.db", cwd=tmp_path))
    assert "not a SQLite database" in line and (tmp_path / "notes.db").read_text() == "hello\n"


@pytest.mark.slow
def test_a_sqlite_file_that_holds_no_study(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    before = digest(tmp_path / "other.db")
    assert "holds no tuner study" in one_error_line(run_tuner("trials", "other.db", cwd=tmp_path))
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--db", "other.db", cwd=tmp_path))
    assert "holds no tuner study" in line
    assert digest(tmp_path / "other.db") == before


def test_a_corrupt_database(db):
    data = bytearray(db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # wreck the schema page, keep the header
    db.write_bytes(bytes(data))
    before = digest(db)
    line = one_error_line(run_tuner("best", str(db), cwd=db.parent))
    assert "corrupt" in line or "not a" in line
    one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--db", str(db), cwd=db.parent))
    assert digest(db) == before


def test_an_empty_study(tmp_path):
    optuna.create_study(study_name="empty", storage=f"sqlite:///{tmp_path / 'e.db'}", direction="maximize")
    assert "no completed trial" in one_error_line(run_tuner("best", "e.db", cwd=tmp_path))


@pytest.mark.slow
def test_unknown_study_name_and_several_studies(db):
    line = one_error_line(run_tuner("best", str(db), "--study", "nope", cwd=db.parent))
    assert "no study 'nope'" in line and "mlp-digits" in line
    optuna.create_study(study_name="second", storage=f"sqlite:///{db}")
    line = one_error_line(run_tuner("best", str(db), cwd=db.parent))
    assert "holds 2 studies (mlp-digits, second)" in line and "--study" in line
    assert run_tuner("best", str(db), "--study", "mlp-digits", cwd=db.parent).returncode == 0


@pytest.mark.parametrize("args, expected", [
    (("--trials", "0"), "--trials must be at least 1"),
    (("--trials", "-3"), "--trials must be at least 1"),
    (("--epochs", "0"), "--epochs must be at least 1"),
    (("--space", "lr=-1:1"), "lr"),
    (("--space", "lr=0.1:0.001"), "low 0.1 is above high 0.001"),
    (("--space", "lr=0:1:log"), "log range needs low > 0"),
    (("--space", "batch_size=0,64"), "batch_size: must be > 0"),
    (("--space", "dropout=0.3"), "no dropout"),
    (("--space", "learning_rate=0.1"), "unknown hyperparameter 'learning_rate'"),
    (("--space", "lr"), "expected NAME=LOW:HIGH"),
    (("--space", "missing.toml"), "does not exist"),
    (("--device", "tpu"), "--device 'tpu'"),
    (("--plugin", "lenet-nonesuch"), "unknown dataset 'nonesuch'"),
    (("--db", "x.db", "--storage", "sqlite:///y.db"), "not both"),
    (("--epochs", "5"), "this study was run with epochs=1"),
])
def test_impossible_values_leave_the_database_alone(args, expected, db):
    before = digest(db)
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--db", str(db), *args,
                                    cwd=db.parent))
    assert expected in line
    assert digest(db) == before


def test_an_in_memory_database_is_refused_before_anything_is_written(tmp_path):
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--storage", "sqlite:///:memory:",
                                    cwd=tmp_path))
    assert "in-memory database" in line and "--db PATH" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even a file named ':memory:'


def test_a_database_path_under_a_file_is_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--db", "notes.txt/x.db", cwd=tmp_path))
    assert "cannot create the folder notes.txt" in line and "--db" in line
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_study_of_another_plugin_is_not_mixed_in(db):
    before = digest(db)
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-digits", "--db", str(db),
                                    "--study", "mlp-digits", cwd=db.parent))
    assert "tunes mlp-digits, not lenet-digits" in line
    assert digest(db) == before


@pytest.mark.slow
def test_missing_data_offline_names_the_path_and_the_fix(tmp_path):
    line = one_error_line(run_tuner("optimize", "--plugin", "lenet-mnist", "--data-dir", "empty",
                                    cwd=tmp_path))
    assert str(tmp_path / "empty" / "MNIST" / "raw") in line and "digits" in line
    assert not (tmp_path / "studies").exists()  # no database was created for a study that cannot run
    line = one_error_line(run_tuner("optimize", "--plugin", "net-cifar2", cwd=tmp_path))
    assert "CIFAR-10 files missing" in line and "cifar-10-python.tar.gz" in line


@pytest.mark.slow
def test_unknown_plugin_refused_pair_and_unknown_option(tmp_path, demo_plugins):
    from helpers import pythonpath

    assert "did you mean 'lenet'" in one_error_line(
        run_tuner("optimize", "--plugin", "lenett-digits", cwd=tmp_path))
    assert "cannot take digits8" in one_error_line(
        run_tuner("optimize", "--plugin", "lenet-digits8", cwd=tmp_path, env=pythonpath(demo_plugins)))
    assert "No such option" in one_error_line(run_tuner("optimize", "--bogus", cwd=tmp_path))
    assert "not <architecture>-<dataset>" in one_error_line(
        run_tuner("optimize", "--plugin", "lenet", cwd=tmp_path))


def test_debug_shows_the_traceback(tmp_path):
    proc = run_tuner("--debug", "best", "nope.db", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_version_and_help_on_every_command(tmp_path):
    assert run_tuner("--version", cwd=tmp_path, check=True).stdout.startswith("tuner ")
    for command in ("plugins", "optimize", "best", "trials"):
        text = run_tuner(command, "--help", cwd=tmp_path, check=True).stdout
        assert "Usage: tuner " + command in text
    assert "New trials to run now" in run_tuner("optimize", "--help", cwd=tmp_path).stdout


@pytest.mark.parametrize("args, expected", [
    (("--seed", "-1"), "--seed must be between 0 and 4294967295"),
    (("--seed", str(2**32)), "--seed must be between 0 and 4294967295"),
    (("--timeout", "nan"), "--timeout must be a finite number"),
    (("--timeout", "inf"), "--timeout must be a finite number"),
    (("--db", ""), "--db is empty"),
    (("--db", "sqlite:///x.db"), "--db takes a file path, not a URL; use --storage sqlite:///x.db"),
    (("--study", "../x"), "cannot contain /"),
    (("--study", "/abs/path"), "cannot contain /"),
    (("--study", "."), "cannot contain /"),
    (("--study", ""), "--study is empty"),
    (("--study", "a\x01b"), "control characters"),
    (("--study", "x" * 300), "--study is 300 bytes long"),
    (("--keep", "0"), "--keep must be at least 1"),
    (("--artifacts", "ftp://host/x"), "give a folder or an s3://bucket"),
    (("--space", "lr=abc"), "--space lr: 'abc' is not a number; lr takes a number (e.g. lr=0.01)"),
    (("--space", "batch_size=32,abc"), "--space batch_size: 'abc' is not a whole number"),
    (("--space", "optimizer=3"), "--space optimizer: 3 is not a name"),
    (("--cpus-per-trial", "2"), "--cpus-per-trial and --gpus-per-trial are for --ray"),
    (("--ray", "local", "--gpus-per-trial", "-1"), "--gpus-per-trial must be a number >= 0"),
    (("--ray", "local", "--cpus-per-trial", "0"), "--cpus-per-trial must be a number above 0"),
    (("--ray", "local", "--device", "cuda:1"), "--ray places each trial on a device itself"),
    (("--ray", "127.0.0.1:1"), "--ray 127.0.0.1:1: no Ray head answers there"),
    (("--ray", "head.example"), "--ray head.example: give auto, local, or the head's HOST:PORT"),
])
def test_bad_input_is_one_line_and_nothing_is_made(args, expected, tmp_path):
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", *args, cwd=tmp_path))
    assert expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no half-made database


@pytest.mark.slow
@pytest.mark.parametrize("body, expected", [
    ('[space]\nlr = "fast"\n', "--space lr: 'fast' is not a number; lr takes a number"),
    ('[space]\nlr = {low = "a", high = 0.1}\n', "lr.low = 'a' is not a number"),
    ('[space]\nbatch_size = {low = 16.5, high = 64}\n', "batch_size.low = 16.5 is not a whole number"),
    ('[space]\nlr = {low = 0.001, high = 0.1, log = "yes"}\n', "lr.log = 'yes' must be true or false"),
])
def test_a_space_file_value_of_the_wrong_kind_names_key_value_and_kind(body, expected, tmp_path):
    (tmp_path / "space.toml").write_text(body)
    line = one_error_line(run_tuner("optimize", "--plugin", "mlp-digits", "--space", "space.toml", cwd=tmp_path))
    assert expected in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.toml"]


def _foreign(path: Path, kind: str) -> None:
    """A study made by plain Optuna, or one whose stored record is not valid JSON."""
    import sqlite3

    storage = f"sqlite:///{path}"
    if kind == "minimize":
        study = optuna.create_study(storage=storage, study_name="s", direction="minimize")
        study.optimize(lambda t: (t.suggest_float("x", -10, 10) - 2) ** 2 * 1000, n_trials=3)
    elif kind == "multi-objective":
        study = optuna.create_study(storage=storage, study_name="s", directions=["maximize", "minimize"])
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)), n_trials=3)
    else:
        study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        if kind == "invalid JSON":
            with contextlib.closing(sqlite3.connect(path)) as con:
                con.execute("UPDATE trial_params SET distribution_json = '{not json' WHERE trial_id = 2")
                con.commit()


@pytest.mark.slow
@pytest.mark.parametrize("kind, expected", [
    ("minimize", "minimizes its objective; tuner reads studies that maximize validation accuracy"),
    ("multi-objective", "has 2 objectives"),
    ("plain maximize", "was not made by `tuner optimize`"),
    ("invalid JSON", "holds a record that is not valid JSON"),
])
def test_a_study_tuner_did_not_make_is_refused_in_one_line(kind, expected, tmp_path):
    import sqlite3

    db = tmp_path / "foreign.db"
    _foreign(db, kind)

    def rows() -> list[str]:  # what is stored (tuner turns on SQLite's write-ahead log: not a change of it)
        with contextlib.closing(sqlite3.connect(db)) as con:
            return list(con.iterdump())

    before = rows()
    for args in (("best", str(db)), ("best", str(db), "--json"), ("trials", str(db)),
                 ("optimize", "--plugin", "mlp-digits", "--db", str(db), "--study", "s", "--trials", "1")):
        assert expected in one_error_line(run_tuner(*args, cwd=tmp_path)), args
    assert rows() == before  # nothing stored was changed
