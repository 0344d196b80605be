"""`tuner optimize --compile`: torch.compile'd trials store weights a plain model loads."""

from __future__ import annotations

import json
import os

import pytest
import torch
from helpers import one_error_line, run_tuner

from tuner.contract import Hyperparameters
from tuner.data import model_shape
from tuner.plugins.registry import registry


@pytest.mark.slow
def test_compiled_trials_keep_plain_weights(tmp_path):
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--epochs", "2", "--compile",
                     "--quiet", cwd=tmp_path, check=True)
    assert "Traceback" not in proc.stderr and "CUDA_HOME" not in proc.stderr, proc.stderr
    summary = json.loads(run_tuner("best", "studies/mlp-digits.db", "--json", cwd=tmp_path, check=True).stdout)
    assert summary["counts"]["COMPLETE"] == 3 and summary["test_accuracy"] > 0.8
    # No "_orig_mod." prefixes: the file loads into the plugin's own, uncompiled model.
    arch, data = registry().architecture("mlp"), registry().dataset("digits")
    model = arch.build(model_shape(arch, data), Hyperparameters.from_dict(summary["params"]))
    model.load_state_dict(torch.load(summary["weights"], weights_only=True))


@pytest.mark.slow
def test_a_compiler_that_fails_is_one_line(tmp_path):
    env = {**os.environ, "CXX": "/bin/false"}  # no working C++ compiler for inductor
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", "--epochs", "1", "--compile",
                     cwd=tmp_path, env=env)
    line = one_error_line(proc)
    assert "--compile: torch.compile failed" in line and "run without --compile" in line


@pytest.mark.slow
def test_a_study_that_changes_shapes_stays_compiled(tmp_path):
    """netwidth searches its layer width: every trial brings new shapes (and batch sizes). With
    torch's default limit of 8 recompiles the third trial hit it and later ones ran uncompiled."""
    proc = run_tuner("optimize", "--plugin", "netwidth-digits", "--trials", "4", "--epochs", "1", "--compile",
                     "--quiet", cwd=tmp_path, check=True, env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")})
    assert "recompile_limit" not in proc.stderr, proc.stderr
    assert sum(line.startswith("trial ") for line in proc.stdout.splitlines()) == 4  # one line per trial
