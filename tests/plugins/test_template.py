"""The plugin template (docs/plugin-template) is installed and tuned end to end, following
docs/plugins.md step by step, and its own conformance tests pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, one_error_line, pip_install_target, pythonpath, run_tuner

TEMPLATE = ROOT / "docs" / "plugin-template"


@pytest.fixture(scope="module")
def template_site(tmp_path_factory) -> Path:
    return pip_install_target(TEMPLATE, tmp_path_factory.mktemp("template-site"))


@pytest.mark.slow
def test_template_is_tuned_end_to_end_through_the_cli(template_site, tmp_path):
    env = pythonpath(template_site)
    subprocess.run([sys.executable, "-c", "from tuner_mynet.data import write_example_files; "
                    "write_example_files('data')"], cwd=tmp_path, env={**env}, check=True)
    listing = run_tuner("plugins", cwd=tmp_path, env=env, check=True).stdout
    assert "mynet" in listing and "mydata" in listing and "tuner-mynet" in listing
    check = run_tuner("plugins", "--check", "mynet-mydata", "--data-dir", "data", cwd=tmp_path, env=env,
                      check=True)
    assert "input (1, 16, 16)" in check.stdout
    run_tuner("optimize", "--plugin", "mynet-mydata", "--data-dir", "data", "--trials", "4", "--epochs", "2",
              "--quiet", cwd=tmp_path, env=env, check=True)
    summary = json.loads(run_tuner("best", "studies/mynet-mydata.db", "--json", cwd=tmp_path, env=env,
                                   check=True).stdout)
    assert {"width", "depth"} <= set(summary["params"])  # the plugin's own hyperparameters
    listed = json.loads(run_tuner("trials", "studies/mynet-mydata.db", "--json", cwd=tmp_path, env=env,
                                  check=True).stdout)["trials"]
    assert len(listed) == 4 and listed[0]["reference"]
    assert summary["value"] == max(t["value"] for t in listed if t["state"] == "COMPLETE")  # the best is the best
    own = {(t["params"]["width"], t["params"]["depth"]) for t in listed}
    assert len(own) > 1, "the search never moved the plugin's own hyperparameters"
    table = run_tuner("trials", "studies/mynet-mydata.db", cwd=tmp_path, env=env, check=True).stdout
    header = next(line for line in table.splitlines() if "state" in line)
    assert "width" in header and "depth" in header


def test_template_own_tests_pass_with_the_conformance_kit(template_site, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(TEMPLATE / "tests")], cwd=tmp_path, env={**pythonpath(template_site),
                                                                         "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 passed" in proc.stdout


def test_template_missing_data_is_one_line(template_site, tmp_path):
    line = one_error_line(run_tuner("optimize", "--plugin", "mynet-mydata", "--data-dir", "nowhere",
                                    cwd=tmp_path, env=pythonpath(template_site)))
    assert "train.npz, test.npz missing from" in line


def test_contract_errors_stop_before_the_study_starts(broken_plugins, tmp_path):
    line = one_error_line(run_tuner("optimize", "--plugin", "wrongwidth-digits", cwd=tmp_path,
                                    env=pythonpath(broken_plugins)))
    assert "architecture plugin 'wrongwidth' (from tuner-broken-plugins)" in line and "10 classes" in line
    assert not (tmp_path / "studies").exists()
