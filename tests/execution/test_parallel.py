"""`tuner optimize --jobs N`: several trials at once in worker processes, one study database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
import torch
from helpers import TUNER, one_error_line, run_tuner, training, wait_for_trials

from tuner.storage import StudyArtifacts


def load(db: Path, name: str = "mlp-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


@pytest.mark.slow
def test_jobs_share_one_budget_and_one_study(tmp_path):
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "7", "--epochs", "3", "--jobs", "2",
                     "--quiet", cwd=tmp_path, check=True)
    assert "2 trials at once" in proc.stdout
    db = tmp_path / "studies" / "mlp-digits.db"
    study = load(db)
    assert len(study.trials) == 7  # --trials is exact across workers
    assert all(t.state.is_finished() for t in study.trials)
    assert study.trials[0].user_attrs["reference"] and study.trials[0].state.name == "COMPLETE"
    assert sum(1 for t in study.trials if t.user_attrs.get("reference")) == 1
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 7  # workers draw apart
    summary = json.loads(run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout)
    kept = {p.name for p in (tmp_path / "studies" / "mlp-digits.artifacts").iterdir()}
    records = {t.number: t.user_attrs.get("weights") for t in study.trials}
    assert kept == {records[n]["artifact_id"] for n in {summary["trial"], 0}}  # the best and the reference
    # each scored with its own kept weights: near its validation accuracy (untrained weights score 10%)
    assert abs(summary["test_accuracy"] - summary["value"]) < 0.1, summary
    assert abs(summary["reference_test_accuracy"] - summary["reference_value"]) < 0.1, summary
    assert [(r["jobs"], r["trials_requested"]) for r in summary["runs"]] == [(2, 7)]  # one run, not one per worker

    # Resuming with more jobs adds exactly that many trials again.
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--jobs", "3", "--quiet", cwd=tmp_path,
              check=True)
    assert len(load(db).trials) == 10


@pytest.mark.reliability
@pytest.mark.slow
def test_ctrl_c_stops_every_worker_and_the_study_resumes(tmp_path):
    args = ["optimize", "--plugin", "mlp-digits", "--trials", "50", "--epochs", "300", "--jobs", "2", "--quiet"]
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    # Its own process group, signalled as a whole: what Ctrl-C in a terminal does.
    proc = subprocess.Popen([TUNER, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    db = tmp_path / "studies" / "mlp-digits.db"
    wait_for_trials(db, "mlp-digits", lambda trials: training(trials) == 2, proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: the running trials are stored as failed" in stderr
    study = load(db)
    states = [t.state.name for t in study.trials]
    assert "RUNNING" not in states and states.count("FAIL") == 2, states
    assert all(t.user_attrs.get("fail_reason") == "interrupted" for t in study.trials if t.state.name == "FAIL")
    assert "Top" in stdout

    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", "--jobs", "2", "--quiet", cwd=tmp_path,
              check=True)
    resumed = load(db)
    assert len(resumed.trials) == len(states) + 2
    assert any(t.user_attrs.get("reference") and t.state.name == "COMPLETE" for t in resumed.trials)


def children(pid: int) -> dict[int, str]:
    """Child processes of ``pid``: {pid: command line}."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_text().replace("\0", " ")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
    return found


def start_jobs(tmp_path: Path, trials: int = 50, epochs: int = 300) -> subprocess.Popen:
    args = ["optimize", "--plugin", "mlp-digits", "--trials", str(trials), "--epochs", str(epochs), "--jobs", "2",
            "--quiet"]
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([TUNER, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def sigint_ignored(pid: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    raise AssertionError("no SigIgn line")


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the workers' state in /proc")
def test_workers_ignore_ctrl_c_from_their_first_instruction(tmp_path):
    """A worker spends seconds importing torch before its own code runs: Ctrl-C then must not
    print its traceback. It is started with SIGINT ignored; checked the moment it appears."""
    proc = start_jobs(tmp_path)
    deadline, seen = time.time() + 120, {}
    while time.time() < deadline and len(seen) < 2:
        for pid, cmd in children(proc.pid).items():
            if "spawn_main" in cmd and pid not in seen:
                seen[pid] = sigint_ignored(pid)
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # while they are still starting
    _, stderr = proc.communicate(timeout=120)
    assert len(seen) == 2 and all(seen.values()), seen
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    # the main process made the study (and queued the reference) before it started its workers
    trials = load(tmp_path / "studies" / "mlp-digits.db").trials
    assert trials and {t.state.name for t in trials} <= {"WAITING", "FAIL"}, [t.state.name for t in trials]
    assert all(t.user_attrs.get("fail_reason") == "interrupted" for t in trials if t.state.name == "FAIL")


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the workers through /proc")
def test_workers_stop_when_the_main_process_is_killed(tmp_path):
    proc = start_jobs(tmp_path)
    db = tmp_path / "studies" / "mlp-digits.db"
    wait_for_trials(db, "mlp-digits", lambda trials: training(trials) == 2, proc=proc)
    workers = [pid for pid, cmd in children(proc.pid).items() if "spawn_main" in cmd]
    assert len(workers) == 2
    proc.kill()  # the main process alone, without a chance to tell its workers
    proc.wait(timeout=60)
    deadline = time.time() + 60
    while time.time() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    proc.communicate(timeout=60)  # the workers held its output pipes
    assert not alive, "workers trained on alone"
    trials = load(db).trials
    assert "RUNNING" not in [t.state.name for t in trials]
    assert [t.user_attrs.get("fail_reason") for t in trials if t.state.name == "FAIL"] == ["interrupted"] * 2


@pytest.mark.reliability
@pytest.mark.slow
def test_impossible_jobs_is_one_line(tmp_path):
    for value in ("0", "65"):
        proc = run_tuner("optimize", "--plugin", "mlp-digits", "--jobs", value, cwd=tmp_path)
        assert proc.returncode == 2
        assert "--jobs must be between 1 and 64" in one_error_line(proc)
    assert not (tmp_path / "studies").exists()


def test_tidy_keeps_the_best_the_reference_and_running_trials(tmp_path):
    study = optuna.create_study(direction="maximize")
    store = StudyArtifacts(study, str(tmp_path / "w"), None, keep=1)
    model = torch.nn.Linear(2, 2)
    for value, attrs in [(0.5, {"reference": True}), (0.7, {}), (0.9, {}), (0.8, {})]:
        trial = study.ask()
        for key, v in attrs.items():
            trial.set_user_attr(key, v)
        store.save(trial, model)  # as each process keeps what it saw as its best
        study.tell(trial, value)
    running = study.ask()  # trial 4, still running (another process's)
    store.save(running, model)
    (tmp_path / "w" / "notes.txt").write_text("mine")
    store.tidy()
    left = {p.name for p in (tmp_path / "w").iterdir()}
    kept = {t.number for t in study.trials if t.user_attrs["weights"]["artifact_id"] in left}
    assert kept == {0, 2, 4} and "notes.txt" in left and len(left) == 4


@pytest.mark.reliability
@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="finds the workers through /proc")
def test_a_worker_killed_outright_fails_its_trial_at_once_and_the_others_finish(tmp_path):
    proc = start_jobs(tmp_path, trials=4, epochs=150)
    db = tmp_path / "studies" / "mlp-digits.db"
    wait_for_trials(db, "mlp-digits", lambda trials: training(trials) == 2, proc=proc)
    victim = min(pid for pid, cmd in children(proc.pid).items() if "spawn_main" in cmd)
    os.kill(victim, signal.SIGKILL)  # the out-of-memory killer's way
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "was killed (SIGKILL)" in stderr and "is stored as failed; the other workers go on" in stderr
    assert "Traceback" not in stderr and "Top" in stdout  # the summary is printed
    trials = load(db).trials
    states = [t.state.name for t in trials]
    assert len(trials) == 4 and states.count("FAIL") == 1 and "RUNNING" not in states, states
    killed = next(t for t in trials if t.state.name == "FAIL")
    assert killed.user_attrs["process"]["pid"] == victim and "fail_reason" not in killed.user_attrs


def test_jobs_spread_over_every_gpu_or_the_ones_named(monkeypatch):
    """The device layer faked as a machine with 4 GPUs: --device cuda gives each worker the next
    GPU, a list gives them in turn, a GPU that is not there is one line (issue 21)."""
    from tuner.errors import UsageError
    from tuner.execution import worker_options
    from tuner.study import OptimizeOptions

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)

    def devices(spec: str, jobs: int) -> list[str]:
        chosen = worker_options(OptimizeOptions(plugin="mlp-digits", device=spec, jobs=jobs), jobs, 10)
        assert all(o.trials == 10 for o in chosen)
        return [o.device for o in chosen]

    assert devices("cuda", 4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert devices("auto", 6) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert devices("cuda:0,cuda:2", 4) == ["cuda:0", "cuda:2", "cuda:0", "cuda:2"]
    assert devices("cuda:3", 2) == ["cuda:3", "cuda:3"]
    assert devices("cpu", 2) == ["cpu", "cpu"]
    with pytest.raises(UsageError, match="only 4 GPU"):
        devices("cuda:0,cuda:7", 2)
