"""No regressions: a quick form of benchmark 1 (tuner's loop against a bare pre-loaded loop).

Fails only if tuner's training loop is slower than the bare loop by more than noise (25%: on a shared
2-core machine the same two loops measured 0.84× to 1.02× of each other in separate runs);
the numbers that show the speed goals come from `benchmarks/`, not from this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

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


@pytest.mark.slow
def test_the_search_benchmark_runs_every_optuna_searcher_and_counts_pruning_regret(mnist_dir):
    """A quick form of benchmark 10 (benchmarks/search.py): each searcher on the same training,
    epochs counted, pruned trials trained on in side runs. Its figures are docs/benchmarks.md's."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/search.py", "--pairs", "mlp-mnist", "--seeds", "1", "--budget", "12",
         "--epochs", "3", "--max-train", "600", "--data-dir", str(mnist_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line.split()[:1]}
    for name in ("tpe", "tpe+median", "tpe+hyperband", "tuner", "tuner-noprior"):
        assert name in rows, proc.stdout
    assert "target" in proc.stdout and "epochs to target" in proc.stdout


def _search(mnist_dir, folder, *extra: str) -> tuple[str, dict]:
    """The search benchmark's printed output, and its table by searcher, columns by name (--json)."""
    rows = folder / f"search-{time.monotonic_ns()}.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/search.py", "--pairs", "mlp-mnist", "--seeds", "1", "--budget", "12",
         "--epochs", "3", "--max-train", "600", "--data-dir", str(mnist_dir), "--json", str(rows), *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, json.loads(rows.read_text())["mlp-mnist"]


@pytest.mark.slow
def test_the_search_benchmark_runs_two_trials_at_a_time_the_same_every_run(mnist_dir, tmp_path):
    """``--jobs 2``: two trials of one study at a time, their epochs counted as they end; every
    trial of the budget is counted once (12 epochs of 3-epoch trials, none pruned: 4 trials).
    The workers take turns by a clock of epochs, so a second run prints the same study, and the
    reference trains as it does one at a time (the same score, so the same target)."""
    out, table = _search(mnist_dir, tmp_path, "--searchers", "tpe", "tuner", "--no-regret", "--jobs", "2")
    assert "2 trials at a time" in out
    assert table["tpe"]["trials"] == 4, out  # 12 epochs / 3

    def counted(rows: dict) -> dict:  # every row without its wall seconds
        return {name: {k: v for k, v in row.items() if k != "seconds"} for name, row in rows.items()}

    _, again = _search(mnist_dir, tmp_path, "--searchers", "tpe", "tuner", "--no-regret", "--jobs", "2")
    assert counted(again) == counted(table)
    alone, _ = _search(mnist_dir, tmp_path, "--searchers", "tpe", "--no-regret")
    assert [line for line in alone.splitlines() if "reference" in line] == \
        [line for line in out.splitlines() if "reference" in line], alone + out


@pytest.mark.slow
def test_the_fused_benchmark_compares_cohorts_and_whole_studies(mnist_dir, tmp_path):
    """A quick form of benchmark 11 (benchmarks/fused.py): K trials fused against the same K alone,
    then the same seeded `tuner optimize` study with and without --fuse. Figures: docs/benchmarks.md."""
    common = ["--max-train", "600", "--epochs", "1", "--data-dir", str(mnist_dir)]
    proc = subprocess.run([sys.executable, "benchmarks/fused.py", "--fuse", "2", *common], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(line.split()[:1] == ["2"] and "×" in line for line in proc.stdout.splitlines()), proc.stdout
    rows_file = tmp_path / "fused.json"
    study = ["--study", "4", "--fuse", "auto", "2", "--repeats", "1", "--json", str(rows_file)]
    proc = subprocess.run([sys.executable, "benchmarks/fused.py", *study, *common], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(rows_file.read_text())
    assert list(rows) == ["1", "auto", "2"] and rows["2"]["k"] == "2", rows  # --fuse 2 trained cohorts of 2
    assert all(row["trials"] == 4 for row in rows.values()), rows  # every contender ran the whole study


@pytest.mark.slow
def test_the_neighbours_benchmark_trains_each_one_setting_move_of_the_reference(mnist_dir):
    """benchmarks/neighbours.py: the reference and each setting moved one step, trained alone with
    the reference's seed; the count of those that beat it by a standard error. Figures in
    docs/benchmarks.md, section 10."""
    proc = subprocess.run(
        [sys.executable, "benchmarks/neighbours.py", "--pair", "mlp-mnist", "--seeds", "1", "--epochs", "1",
         "--max-train", "600", "--data-dir", str(mnist_dir)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moves = [line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")]
    # seed 002's reference: SGD at lr 0.01, batch 64, no weight decay, a step schedule
    assert moves == ["lr", "lr", "batch", "batch", "wd", "wd", "adam", "adamw", "plateau"], proc.stdout
    assert "neighbours that reach the target:" in proc.stdout and "of 9" in proc.stdout


@pytest.mark.parametrize(("flag", "said"), [(["--jobs", "0"], "--jobs must be at least 1"),
                                            (["--pruner-warmup", "-1"], "--pruner-warmup must be 0 or more"),
                                            (["--prior-spread", "0"], "--prior-spread must be more than 0"),
                                            (["--prior-keep", "1.5"], "--prior-keep must be between 0 and 1")])
def test_the_search_benchmark_refuses_an_impossible_setting_in_one_line(flag, said):
    """Before, --jobs 0 ran no trial and ended in a traceback; now one line and exit 2."""
    proc = subprocess.run([sys.executable, "benchmarks/search.py", *flag], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and said in proc.stderr.splitlines()[-1] and "Traceback" not in proc.stderr
