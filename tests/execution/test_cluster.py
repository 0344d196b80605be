"""``tuner optimize --ray`` on a real local Ray cluster of two nodes: a head (which declares one
GPU, for scheduling) and a second node started with ``ray start --address`` and its own
resources. Trials are placed on both nodes; four quarter-GPU trials run at once and never five;
the second node killed mid-trial (its raylet and workers, SIGKILL) costs one failed trial, "node
lost", and the study finishes; weights come back to the driver's folder."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from tests.helpers import TUNER, run_tuner
from tuner.execution.cluster import NODE_LOST
from tuner.runtime import free_port

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

RAY = str(Path(sys.executable).with_name("ray"))


def _raylets() -> dict[int, str]:
    """pid -> command line of every raylet on this machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "/raylet/raylet " in cmd:
                found[int(entry.name)] = cmd
    return found


def _descendants(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                children += [int(entry.name), *_descendants(int(entry.name))]
    return children


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head on 127.0.0.1 (1 CPU, 1 declared GPU) and a second node (1 CPU, resource "second")."""
    home = tmp_path_factory.mktemp("ray-home")  # no stray ~/.ray token of another cluster
    env = {**os.environ, "HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3"}
    port = free_port()
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
    subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
                    "--num-gpus", "1", "--include-dashboard", "false", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)
    subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                    "--resources", json.dumps({"second": 1}), "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)
    second = next((pid, cmd) for pid, cmd in _raylets().items() if "second," in cmd)
    node_id = second[1].split("--node_id=", 1)[1].split()[0]
    try:
        yield {"address": f"127.0.0.1:{port}", "env": env, "second_pid": second[0], "second_id": node_id}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)


def _trials(cwd: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{cwd / 'studies' / 'mlp-digits.db'}"
    return optuna.load_study(study_name="mlp-digits", storage=storage).get_trials(deepcopy=False)


def _most_at_once(trials: list[optuna.trial.FrozenTrial]) -> int:
    spans = [(t.datetime_start, t.datetime_complete) for t in trials if t.datetime_complete]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_quarter_gpu_trials_run_four_at_once_and_never_five(tmp_path, cluster):
    # --jobs 6 asks Ray for six actors of a quarter GPU each; the one GPU (the head's) fits four.
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "12", "--epochs", "3", "--ray", cluster["address"],
              "--gpus-per-trial", "0.25", "--cpus-per-trial", "0.1", "--jobs", "6", "--device", "cpu",
              "--pruner", "none", "--quiet", cwd=tmp_path, env=cluster["env"], check=True)
    trials = _trials(tmp_path)
    assert len(trials) == 12 and all(t.state.name == "COMPLETE" for t in trials)
    assert _most_at_once(trials) == 4
    assert {t.user_attrs["process"]["node"]["id"] for t in trials} != {cluster["second_id"]}


def test_each_actor_trains_a_fused_cohort_and_the_budget_stays_exact(tmp_path, cluster):
    # Two actors (one per node), each training cohorts of 3: 7 trials are 3 + 3 + 1.
    done = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "7", "--epochs", "2", "--ray",
                     cluster["address"], "--fuse", "3", "--device", "cpu", "--pruner", "none", "--quiet",
                     cwd=tmp_path, env=cluster["env"], check=True)
    assert "--fuse 3: 3 trials trained at once as one model" in done.stdout
    trials = _trials(tmp_path)
    assert len(trials) == 7 and all(t.state.name == "COMPLETE" for t in trials)
    cohorts = {tuple(t.user_attrs["cohort"]) for t in trials if "cohort" in t.user_attrs}
    assert cohorts and all(len(c) in (2, 3) for c in cohorts)
    for c in cohorts:  # one actor trained each cohort
        assert len({json.dumps(trials[n].user_attrs["process"], sort_keys=True) for n in c}) == 1


def _wait_for(cwd: Path, driver: subprocess.Popen, found, seconds: float = 240):
    """Poll the study until ``found(trials)`` gives something (the driver still running)."""
    deadline = time.time() + seconds
    while time.time() < deadline and driver.poll() is None:
        time.sleep(0.3)
        try:
            trials = _trials(cwd)
        except Exception:  # not created yet
            continue
        if (value := found(trials)) is not None:
            return value
    return None


def _node(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get("process", {}).get("node", {}).get("id")


def test_a_killed_driver_leaves_no_trial_running_once_run_again(tmp_path, cluster):
    env = {**os.environ, **cluster["env"], "TUNER_OFFLINE": "1"}
    args = ["optimize", "--plugin", "mlp-digits", "--epochs", "40", "--ray", cluster["address"], "--quiet"]
    driver = subprocess.Popen([TUNER, *args, "--trials", "3"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = _wait_for(tmp_path, driver, lambda trials: next(
        (t.number for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("history")), None))
    assert running is not None, "no trial started"
    driver.kill()  # SIGKILL: nothing of it runs; Ray ends its actors
    driver.wait()
    run_tuner(*args, "--trials", "1", cwd=tmp_path, env=cluster["env"], check=True)
    states = {t.number: t.state.name for t in _trials(tmp_path)}
    assert "RUNNING" not in states.values() and states[running] == "FAIL"
    assert list(states.values()).count("COMPLETE") >= 1
    shown = json.loads(run_tuner("trials", "studies/mlp-digits.db", "--json", cwd=tmp_path, check=True).stdout)
    assert {row["reason"] for row in shown["trials"] if row["number"] == running} == {
        "its process stopped without a word (killed, or the machine went down)"}
    assert all(row["node"] for row in shown["trials"] if row["state"] == "COMPLETE")


def test_ctrl_c_stops_the_ray_trials_as_interrupted_and_the_same_command_resumes(tmp_path, cluster):
    env = {**os.environ, **cluster["env"], "TUNER_OFFLINE": "1"}
    args = ["optimize", "--plugin", "mlp-digits", "--epochs", "40", "--ray", cluster["address"], "--quiet",
            "--checkpoint-every", "0", "--pruner", "none"]
    driver = subprocess.Popen([TUNER, *args, "--trials", "3"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    running = _wait_for(tmp_path, driver, lambda trials: next(
        (t.number for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("checkpoint")), None))
    assert running is not None, "no trial started"
    driver.send_signal(signal.SIGINT)  # the terminal's Ctrl-C
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130 and "Traceback" not in err, err
    said = " ".join(err.split())
    assert "interrupted: the running trials are stored as failed; run the same command to resume" in said
    trials_before = {t.number: t.user_attrs for t in _trials(tmp_path)}
    states = {t.number: (t.state.name, t.user_attrs.get("fail_reason")) for t in _trials(tmp_path)}
    assert states[running] == ("FAIL", "interrupted") and "RUNNING" not in {s for s, _ in states.values()}
    run_tuner(*args, "--trials", "1", cwd=tmp_path, env=cluster["env"], check=True)
    retry = next(t for t in _trials(tmp_path) if t.user_attrs.get("retry_of") == running)
    assert retry.state.name == "COMPLETE" and len(retry.user_attrs["history"]) == 40
    assert retry.user_attrs["history"][0] == trials_before[running]["history"][0]  # went on from it, not again


def test_a_postgresql_study_runs_on_ray_with_no_proxy_and_no_password_shown(tmp_path, cluster, pg_cluster):
    """--storage URL: each actor opens the server's study itself; weights come back to the
    driver's folder; the password is printed nowhere."""
    from servers import PG_PASSWORD

    url = pg_cluster.new_database()
    done = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "4", "--epochs", "2", "--pruner", "none",
                     "--ray", cluster["address"], "--storage", url, "--artifacts", str(tmp_path / "weights"),
                     cwd=tmp_path, env=cluster["env"], check=True)
    assert PG_PASSWORD not in done.stdout + done.stderr
    trials = optuna.load_study(study_name="mlp-digits", storage=url).get_trials(deepcopy=False)
    assert [(t.state.name, bool(_node(t))) for t in trials] == [("COMPLETE", True)] * 4
    assert not (tmp_path / "studies").exists()  # nothing made for a proxy: no SQLite file served
    best = json.loads(run_tuner("best", url, "--json", cwd=tmp_path, check=True).stdout)
    assert Path(best["weights"]).is_relative_to(tmp_path / "weights") and PG_PASSWORD not in json.dumps(best)
    assert "1.weight" in torch.load(best["weights"], weights_only=True)


def test_twenty_trials_on_two_nodes_and_a_lost_node_costs_one_trial(tmp_path, cluster):
    env = {**os.environ, **cluster["env"], "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    driver = subprocess.Popen([TUNER, "optimize", "--plugin", "mlp-digits", "--trials", "20", "--epochs", "6",
                               "--ray", cluster["address"], "--pruner", "none"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = cluster["second_id"]

    def running_on_second(trials):  # once a trial finished there, the next one that trains there
        if not any(t.state.name == "COMPLETE" and _node(t) == second for t in trials):
            return None
        return next((t.number for t in trials if t.state.name == "RUNNING" and _node(t) == second), None)

    on_second = _wait_for(tmp_path, driver, running_on_second)
    assert on_second is not None, "no trial ran on the second node"
    for pid in [cluster["second_pid"], *_descendants(cluster["second_pid"])]:
        os.kill(pid, signal.SIGKILL)  # the machine is gone: its raylet and every worker of it
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, out + err
    trials = _trials(tmp_path)
    assert sorted(t.number for t in trials) == list(range(20))  # every number once
    states = {t.number: t.state.name for t in trials}
    assert "RUNNING" not in states.values()
    assert states[on_second] == "FAIL" and trials[on_second].user_attrs["fail_reason"] == NODE_LOST
    assert [n for n, s in states.items() if s != "COMPLETE"] == [on_second]  # nothing else lost
    nodes = {_node(t) for t in trials}
    assert len(nodes) == 2 and cluster["second_id"] in nodes
    # Off a terminal, a line per finished trial, saying where it ran.
    assert len(re.findall(r"^trial \d+ complete.* on [\d.]+ cpu ", out, re.M)) == 19, out
    best = json.loads(run_tuner("best", "studies/mlp-digits.db", "--json", cwd=tmp_path, check=True).stdout)
    weights = Path(best["weights"])
    assert weights.is_relative_to(tmp_path / "studies" / "mlp-digits.artifacts")  # on the driver's disk
    assert "1.weight" in torch.load(weights, weights_only=True)  # seed 002's MLP: its first Linear
