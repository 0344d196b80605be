"""Several processes on one study file at once: two terminals starting the same new study,
--jobs workers taking queued trials. Each race here was seen to lose trials or fail a run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import run_tuners_together

from tuner.storage import Location, sqlite_url, storage_for

PROCESSES = 4

# Started PROCESSES times. Each round: say ready, wait for the go, then act at once.
CHILD = '''
import sys, time
from pathlib import Path
import optuna
from tuner.errors import StudyError
from tuner.storage.location import Location, sqlite_url
from tuner.storage.opening import storage_for

me, sync, action, *paths = sys.argv[1:]
sync = Path(sync)
for k, path in enumerate(map(Path, paths)):
    (sync / f"ready-{k}-{me}").touch()
    while not (sync / f"go-{k}").exists():
        pass
    try:
        storage = storage_for(Location(sqlite_url(path), path, "s"), create=True)
        if action == "create":
            print("ok")
        else:  # ask: take 15 trials, queued ones first
            study = optuna.load_study(study_name="s", storage=storage)
            print(" ".join(str(study.ask().number) for _ in range(15)))
    except StudyError as e:
        print("error:", e)
'''


def run_at_once(tmp_path: Path, action: str, paths: list[Path]) -> list[str]:
    """Start PROCESSES children on ``paths``, release each round at the same moment."""
    sync = tmp_path / "sync"
    sync.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    children = [subprocess.Popen([sys.executable, str(script), str(i), str(sync), action, *map(str, paths)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(PROCESSES)]
    for k in range(len(paths)):
        deadline = time.time() + 120
        while len(list(sync.glob(f"ready-{k}-*"))) < PROCESSES:
            assert time.time() < deadline and all(c.poll() is None for c in children), \
                [c.communicate() for c in children if c.poll() is not None]
            time.sleep(0.01)
        (sync / f"go-{k}").touch()
    lines = []
    for c in children:
        out, err = c.communicate(timeout=300)
        assert c.returncode == 0, err
        lines += out.splitlines()
    return lines


@pytest.mark.reliability
@pytest.mark.slow
def test_processes_creating_one_new_study_file_at_once_all_open_it(tmp_path):
    paths = [tmp_path / f"round{k}" / "studies" / "x.db" for k in range(5)]
    lines = run_at_once(tmp_path, "create", paths)
    assert lines == ["ok"] * PROCESSES * len(paths), [line for line in lines if line != "ok"]


@pytest.mark.reliability
@pytest.mark.slow
def test_a_queued_trial_is_taken_by_one_process_however_many_ask_at_once(tmp_path):
    db = tmp_path / "studies" / "x.db"
    study = optuna.create_study(study_name="s", storage=storage_for(Location(sqlite_url(db), db, "s"), create=True))
    for x in range(40):  # queued, as the reference trial is, and as `enqueue_trial` does
        study.enqueue_trial({"x": x})
    asked = " ".join(run_at_once(tmp_path, "ask", [db])).split()
    # Before the fix two processes both took one queued trial now and then: both trained it,
    # and the second was refused its result ("Cannot tell a COMPLETE trial").
    assert len(asked) == PROCESSES * 15 and len(set(asked)) == len(asked), sorted(asked, key=int)
    assert len(study.trials) == len(asked)


@pytest.mark.slow
def test_two_terminals_running_one_new_study_share_it(tmp_path):
    run_tuners_together("optimize", "--plugin", "mlp-digits", "--trials", "2", "--epochs", "2", "--quiet",
                        cwd=tmp_path)
    study = optuna.load_study(study_name="mlp-digits", storage=sqlite_url(tmp_path / "studies" / "mlp-digits.db"))
    states = [t.state.name for t in study.trials]
    assert len(states) == 4 and set(states) <= {"COMPLETE", "PRUNED"}, states
    assert sum(1 for t in study.trials if t.user_attrs.get("reference")) == 1
