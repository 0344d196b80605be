"""`tuner dashboard`: optuna-dashboard on 127.0.0.1 only, showing the hyperparameters' own names."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import TUNER, lenet_digits_db, need_extra, new_study, one_error_line, run_tuner

from tuner.runtime import free_port


def get(port: int, path: str, timeout: float = 60):
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return json.load(r)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


@pytest.mark.slow
def test_the_dashboard_api_names_real_hyperparameters_and_listens_on_loopback_only(tmp_path_factory):
    need_extra("optuna_dashboard", "dashboard")
    cwd = new_study(tmp_path_factory, "dashboard", "optimize", "--plugin", "lenet-digits", "--trials", "8",
                    "--epochs", "1", "--quiet")
    port = free_port()
    proc = subprocess.Popen([TUNER, "dashboard", str(lenet_digits_db(cwd)), "--port", str(port)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        studies = get(port, "/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["lenet-digits"]
        detail = get(port, f"/api/studies/{studies[0]['study_id']}")
        names = {p["name"] for p in detail["union_search_space"]}
        assert {"lr", "batch_size", "optimizer", "weight_decay"} <= names
        assert not [n for n in names if n.endswith("_is_zero")], names
        for trial in detail["trials"][1:]:  # trial 0 is the reference: it asks only what it sets
            assert "weight_decay" in {p["name"] for p in trial["params"]}, trial["params"]  # 0 too
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        for family, address in {(a[0], a[4][0]) for a in socket.getaddrinfo(socket.gethostname(), None)}:
            if not address.startswith("127.") and address != "::1":
                with socket.socket(family) as s:
                    s.settimeout(2)
                    assert s.connect_ex((address, port)) != 0, f"the dashboard answers on {address}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
    assert "the dashboard's importance is optuna-dashboard's own" in out  # and ours says how it ranks


@pytest.mark.slow
def test_a_taken_port_and_a_wrong_file_are_one_line(tmp_path: Path):
    need_extra("optuna_dashboard", "dashboard")
    (tmp_path / "notes.txt").write_text("not a study")
    assert "not a SQLite database" in one_error_line(run_tuner("dashboard", "notes.txt", cwd=tmp_path))
    run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--epochs", "1", "--quiet", cwd=tmp_path,
              check=True)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_tuner("dashboard", str(lenet_digits_db(tmp_path)), "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2 and "pick another port" in proc.stderr and "Traceback" not in proc.stderr
