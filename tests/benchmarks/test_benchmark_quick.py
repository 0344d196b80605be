"""No regressions: a quick form of benchmark 1 (tuner's loop against a bare pre-loaded loop).

Fails only if tuner's training loop is slower than the bare loop by more than noise (25%: on a shared
2-core machine the same two loops measured 0.84× to 1.02× of each other in separate runs);
the numbers that show the speed goals come from `benchmarks/`, not from this test.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_tuner_loop_is_not_slower_than_a_bare_preloaded_loop():
    proc = subprocess.run(
        [sys.executable, "benchmarks/engine.py", "--quick", "--check", "--noise", "0.25", "--steps", "200",
         "--repeats", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mlp-digits" in proc.stdout and "lenet-digits" in proc.stdout
