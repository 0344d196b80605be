"""Weights as study artifacts: found through the study, never shared by two databases, checked
before use, and reachable from another machine; several processes on one study draw apart.
The storage cases run on SQLite and on a real PostgreSQL server (fixture ``backend``)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import optuna
import pytest
import torch
from helpers import run_tuner, run_tuners_together

from tuner.errors import WeightsError
from tuner.storage import AtomicFileSystemStore, hide_password

SHORT = ["--epochs", "1", "--quiet", "--pruner", "none"]


def best_json(target: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    return json.loads(run_tuner("best", target, "--json", cwd=cwd, env=env, check=True).stdout)


@pytest.mark.slow
def test_two_databases_with_one_study_name_keep_their_own_weights(tmp_path):
    for name in ("a", "b"):
        run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--db", f"studies/{name}.db", *SHORT,
                  cwd=tmp_path, check=True)
    a, b = (best_json(f"studies/{n}.db", tmp_path) for n in ("a", "b"))
    assert a["study"] == b["study"] == "mlp-digits"
    assert Path(a["weights"]).parent == (tmp_path / "studies" / "a.artifacts").resolve()
    assert Path(b["weights"]).parent == (tmp_path / "studies" / "b.artifacts").resolve()
    for summary in (a, b):
        state = torch.load(summary["weights"], weights_only=True)
        assert state and all(isinstance(v, torch.Tensor) for v in state.values())
        assert summary["weights_artifact"]["problem"] is None and len(summary["weights_artifact"]["sha256"]) == 64
    assert not (tmp_path / "studies" / "mlp-digits").exists()  # the old shared folder is gone


@pytest.mark.slow
def test_best_on_another_machine_finds_the_weights_through_the_study(backend, tmp_path):
    kind, args, target = backend
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    machine_a.mkdir(), machine_b.mkdir()
    if kind == "sqlite":  # the study file and its artifacts folder carried over together
        args = ["--db", str(machine_a / "studies" / "s.db")]
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", *args, *SHORT, cwd=machine_a, check=True)
    if kind == "sqlite":
        (machine_a / "studies").rename(machine_b / "moved")
        target = str(machine_b / "moved" / "s.db")
    other_home = {"HOME": str(machine_b / "home"), "XDG_CACHE_HOME": str(machine_b / "home" / ".cache")}
    summary = best_json(target, machine_b, env=other_home)
    assert summary["weights"] is not None, summary["weights_artifact"]
    state = torch.load(summary["weights"], weights_only=True)
    assert state and Path(summary["weights"]).is_relative_to(tmp_path)
    trials = run_tuner("trials", target, cwd=machine_b, env=other_home, check=True)
    assert "Trials of mlp-digits" in trials.stdout


def _damage(path: Path, how: str) -> None:
    path.write_bytes(b"" if how == "empty" else b"not weights at all")


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.parametrize("how", ["empty", "garbage"])
def test_damaged_weights_are_named_and_a_resume_still_finishes(tmp_path, how):
    db = tmp_path / "studies" / "s.db"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", "--db", str(db), *SHORT, cwd=tmp_path,
              check=True)
    summary = best_json(str(db), tmp_path)
    weights = Path(summary["weights"])
    _damage(weights, how)
    # As after an interrupted run: the test accuracy is still owed.
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}")
    study.set_user_attr("test_accuracy", {})

    shown = run_tuner("best", str(db), cwd=tmp_path, check=True)
    line = next(line for line in shown.stdout.splitlines() if line.startswith("warning: weights of trial"))
    assert "damaged" in line and weights.name in line, shown.stdout
    damaged = best_json(str(db), tmp_path)
    assert damaged["weights"] is None and damaged["weights_artifact"]["problem"].startswith("damaged")

    resumed = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--db", str(db), *SHORT,
                        cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    notes = [line for line in resumed.stderr.splitlines() if line.strip()]
    assert len(notes) == 1 and "not measured" in notes[0] and "damaged" in notes[0], resumed.stderr
    assert len(optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}").trials) == 3


@pytest.mark.reliability
@pytest.mark.slow
def test_a_deleted_weights_file_is_reported_missing_not_unkept(tmp_path):
    db = tmp_path / "studies" / "s.db"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--db", str(db), *SHORT, cwd=tmp_path,
              check=True)
    Path(best_json(str(db), tmp_path)["weights"]).unlink()
    summary = best_json(str(db), tmp_path)
    assert summary["weights"] is None and summary["weights_artifact"]["problem"] == "missing"
    assert "missing" in run_tuner("best", str(db), cwd=tmp_path, check=True).stdout


@pytest.mark.slow
def test_keep_k_keeps_the_k_best_and_the_reference(tmp_path):
    db = tmp_path / "studies" / "s.db"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "8", "--keep", "3", "--db", str(db), *SHORT,
              cwd=tmp_path, check=True)
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}")
    done = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: (-t.value, t.number))
    wanted = {t.number for t in done[:3]} | {0}
    files = {p.name for p in (tmp_path / "studies" / "s.artifacts").iterdir()}
    kept = {t.number for t in study.trials if (t.user_attrs.get("weights") or {}).get("artifact_id") in files}
    assert kept == wanted and len(files) == len(wanted)
    assert study.user_attrs["keep"] == 3
    # The setting stays with the study: a resume without --keep still keeps three.
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", "--db", str(db), *SHORT, cwd=tmp_path,
              check=True)
    assert len(list((tmp_path / "studies" / "s.artifacts").iterdir())) in (3, 4)


@pytest.mark.slow
def test_a_study_written_before_the_store_is_still_read(tmp_path):
    """The layout of tuner before artifacts: a path in the trial's ``weights`` attribute."""
    old = tmp_path / "studies" / "lenet-digits" / "trial-0.pt"
    old.parent.mkdir(parents=True)
    torch.save(torch.nn.Linear(2, 2).state_dict(), old)
    db = tmp_path / "studies" / "lenet-digits.db"
    study = optuna.create_study(study_name="lenet-digits", storage=f"sqlite:///{db}", direction="maximize")
    trial = study.ask()
    trial.set_user_attr("weights", str(old))
    trial.set_user_attr("reference", True)
    study.tell(trial, 0.5)
    summary = best_json(str(db), tmp_path)
    assert summary["weights"] == str(old)
    old.unlink()
    assert best_json(str(db), tmp_path)["weights_artifact"]["problem"] == "missing"


@pytest.mark.reliability
@pytest.mark.slow
def test_artifacts_stored_in_the_study_and_a_different_one_refused(tmp_path):
    db = tmp_path / "s.db"
    shared = tmp_path / "mnt" / "shared"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--db", str(db), "--artifacts", str(shared),
              *SHORT, cwd=tmp_path, check=True)
    assert Path(best_json(str(db), tmp_path)["weights"]).parent == shared
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--db", str(db), "--artifacts",
                     str(tmp_path / "elsewhere"), *SHORT, cwd=tmp_path)
    assert proc.returncode == 2 and f"keeps its weights in {shared}/" in proc.stderr
    assert len(optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{db}").trials) == 1


@pytest.mark.reliability
def test_a_write_that_fails_half_way_leaves_no_file(tmp_path):
    store = AtomicFileSystemStore(tmp_path / "store")

    class Breaks(io.BytesIO):
        def read(self, n: int = -1) -> bytes:
            if self.tell() > 0:
                raise OSError(28, "No space left on device")
            return super().read(4)

    with pytest.raises(WeightsError, match=r"store/ \(the disk is full\)"):
        store.write("abc", Breaks(b"0123456789"))
    assert list((tmp_path / "store").iterdir()) == []
    store.write("abc", io.BytesIO(b"0123456789"))
    assert (tmp_path / "store" / "abc").read_bytes() == b"0123456789"


@pytest.mark.slow
def test_two_processes_started_together_draw_apart(backend, tmp_path):
    """2 processes x 6 trials on one new study: numbers 0..11 without a gap, and 11 distinct
    parameter sets besides the reference (before: 7 distinct sets of 12)."""
    kind, args, target = backend
    run_tuners_together("optimize", "--plugin", "mlp-digits", "--trials", "6", *args, *SHORT, cwd=tmp_path)
    storage = target if kind == "postgresql" else f"sqlite:///{target}"
    trials = optuna.load_study(study_name="mlp-digits", storage=storage).trials
    assert sorted(t.number for t in trials) == list(range(12))
    references = [t for t in trials if t.user_attrs.get("reference")]
    assert len(references) == 1
    drawn = {tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("reference")}
    assert len(drawn) == 11


@pytest.mark.slow
def test_a_seeded_single_process_study_is_reproducible(tmp_path):
    for name in ("one", "two"):
        run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "4", "--seed", "3", "--db", f"{name}.db",
                  *SHORT, cwd=tmp_path, check=True)
    params = [[t.params for t in optuna.load_study(study_name="mlp-digits",
                                                   storage=f"sqlite:///{tmp_path / f'{n}.db'}").trials]
              for n in ("one", "two")]
    assert params[0] == params[1]


@pytest.mark.reliability
@pytest.mark.slow
def test_no_password_reaches_output_or_the_database(pg_cluster, tmp_path):
    from servers import PG_PASSWORD

    url = pg_cluster.new_database()
    assert PG_PASSWORD in url
    shared = str(tmp_path / "shared")
    seen = []
    for args in (["optimize", "--plugin", "mlp-digits", "--trials", "2", "--storage", url, "--artifacts", shared,
                  *SHORT],
                 ["best", url], ["best", url, "--json"], ["trials", url],
                 ["optimize", "--plugin", "mlp-digits", "--trials", "1", "--storage", url, "--epochs", "9"],
                 ["best", url.replace(PG_PASSWORD, "Wrong-Pw-7")], ["best", url.rsplit("/", 1)[0] + "/nodb"]):
        proc = run_tuner(*args, cwd=tmp_path)
        seen.append(proc.stdout + proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
    text = "\n".join(seen)
    assert PG_PASSWORD not in text and "Wrong-Pw-7" not in text
    assert hide_password(url) in text  # the URL is shown, without its secret
    assert "cannot open" in seen[-2] and "password authentication failed" in seen[-2]

    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as con:
        tables = [r[0] for r in con.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        dump = "".join(str(con.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables)
    assert "mlp-digits" in dump and PG_PASSWORD not in dump


@pytest.mark.slow
def test_weights_in_an_s3_bucket_are_found_from_another_machine(s3_env, tmp_path):
    """A real S3-compatible server (moto's, in its own process on 127.0.0.1): the weights go to
    the bucket under the prefix, only the kept ones stay, and `best` on another machine
    (another working folder, HOME and cache) fetches and checks them."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name=s3_env["AWS_DEFAULT_REGION"],
                      aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"])
    s3.create_bucket(Bucket="tuner-weights")
    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    machine_a.mkdir(), machine_b.mkdir()
    env_a = {**s3_env, "HOME": str(machine_a / "home"), "XDG_CACHE_HOME": str(machine_a / "home" / ".cache")}
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "4", "--db", "studies/s.db",
              "--artifacts", "s3://tuner-weights/team/s", *SHORT, cwd=machine_a, env=env_a, check=True)
    assert not (machine_a / "studies" / "s.artifacts").exists()  # nothing kept on this disk
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{machine_a / 'studies' / 's.db'}")
    listed = s3.list_objects_v2(Bucket="tuner-weights", Prefix="team/s/").get("Contents", [])
    in_bucket = {o["Key"].removeprefix("team/s/") for o in listed}
    records = {t.number: t.user_attrs.get("weights") for t in study.trials}
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, -t.number))
    assert in_bucket == {records[n]["artifact_id"] for n in {best.number, 0}}  # the best and the reference

    (machine_a / "studies").rename(machine_b / "studies")
    env_b = {**s3_env, "HOME": str(machine_b / "home"), "XDG_CACHE_HOME": str(machine_b / "home" / ".cache")}
    summary = best_json("studies/s.db", machine_b, env=env_b)
    assert summary["artifacts"] == "s3://tuner-weights/team/s"
    assert Path(summary["weights"]).is_relative_to(machine_b / "home" / ".cache")  # fetched into the cache
    assert summary["weights_artifact"]["sha256"] == records[best.number]["sha256"]
    assert torch.load(summary["weights"], weights_only=True)

    # The store cannot be reached: `best` still answers, and says where it expected the weights.
    unreachable = {**env_b, "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "HOME": str(tmp_path / "c"),
                   "XDG_CACHE_HOME": str(tmp_path / "c" / ".cache"), "AWS_MAX_ATTEMPTS": "1"}
    shown = run_tuner("best", "studies/s.db", cwd=machine_b, env=unreachable, check=True)
    warning = [line for line in shown.stdout.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "cannot be reached" in warning[0] and "s3://tuner-weights/team/s" in warning[0]
    assert "Traceback" not in shown.stderr
