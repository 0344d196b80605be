"""The commands docs/usage.md, docs/plugins.md and the README show run as written, so the docs
cannot drift. (docs/scale-out.md names placeholder servers, db.example and a bucket; the same
steps run against real ones in tests/test_storage.py and test_artifacts.py. docs/benchmarks.md's
commands are benchmark runs of minutes, run by hand with their output pasted.)

Each ``$ tuner ...`` line of usage.md's console blocks runs in order in one folder (a shell
runs it, so ``| head`` and ``> best.json`` work), then the README's "Then" block. A command
whose shown output is an ``error:`` line must fail with exactly that line. Two kinds of command
get a budget appended, said here rather than hidden: an ``optimize`` on full MNIST (hours on a
CPU) runs ``--trials 1 --epochs 1 --max-train 300``; and lines that need what this machine has
not (``--device cuda`` without a GPU, a placeholder server ``user:pw@host``, AlexNet's optimize
on a CPU, whose end-of-study test pass over 10,000 images at 224x224 takes minutes) are skipped
by name; ``plugins --check alexnet-mnist`` still builds it and trains a batch.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT

BUDGET = ["--trials", "1", "--epochs", "1", "--max-train", "300"]
TOML_FILE = re.compile(r"(\S+\.toml)")


def console_commands(doc: Path) -> list[tuple[str, list[str], str | None]]:
    """``(command, expected output lines, toml text written before it)`` in the doc's order."""
    found: list[tuple[str, list[str], str | None]] = []
    toml = None
    for kind, body in re.findall(r"```(\w*)\n(.*?)```", doc.read_text(), flags=re.S):
        if kind == "toml":
            toml = body
        if kind != "console":
            continue
        for line in body.splitlines():
            if line.startswith("$ "):
                found.append((line[2:], [], toml))
            elif found:
                found[-1][1].append(line)
    return found


def readme_then_commands() -> list[str]:
    block = re.search(r"## Then\n\n```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("tuner ")]


def why_not_here(command: str) -> str | None:
    if "--device cuda" in command and not torch.cuda.is_available():
        return "needs a CUDA GPU"
    if "user:pw@host" in command:
        return "names a placeholder server"
    if " optimize " in f" {command} " and "alexnet-mnist" in command and not torch.cuda.is_available():
        return "AlexNet at 224x224 scores 10,000 test images at the end: minutes on a CPU"
    return None


def budgeted(command: str) -> str:
    if " optimize " in f" {command} " and "-mnist" in command:
        return f"{command} {' '.join(BUDGET)}"
    return command


@pytest.fixture
def folder(tmp_path: Path, mnist_dir: Path) -> tuple[Path, dict[str, str]]:
    """A user's folder: HOME there, MNIST in ~/data and in the default data folder."""
    (tmp_path / "data").symlink_to(mnist_dir)
    cache = tmp_path / ".cache" / "tuner"
    cache.mkdir(parents=True)
    (cache / "data").symlink_to(mnist_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("TUNER_DATA_DIR", "COLUMNS")}
    env.update(HOME=str(tmp_path), TUNER_OFFLINE="1", XDG_CACHE_HOME=str(tmp_path / ".cache"),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    return tmp_path, env


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    if command.startswith("tuner dashboard"):
        return serve_then_stop(command, cwd, env)
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def serve_then_stop(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A server runs until stopped: start it, wait for its first line, press Ctrl-C."""
    proc = subprocess.Popen(command.split(), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline()
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    served = first.startswith("optuna-dashboard on") and proc.returncode == 0
    return subprocess.CompletedProcess(command, 0 if served else 1, first + out, err)


@pytest.mark.slow
def test_every_command_in_usage_and_the_readme_runs_as_written(folder):
    cwd, env = folder
    ran, skipped = [], []
    steps = [(c, out, toml) for c, out, toml in console_commands(ROOT / "docs" / "usage.md")]
    steps += [(c, [], None) for c in readme_then_commands()]
    for command, shown, toml in steps:
        if why := why_not_here(command):
            skipped.append((command, why))
            continue
        if toml is not None and (m := TOML_FILE.search(command)):
            (cwd / m.group(1)).write_text(toml)
        proc = run(budgeted(command), cwd, env)
        errors = [line for line in shown if line.startswith("error: ")]
        if errors:
            assert proc.returncode == 2, f"{command}: should fail\n{proc.stdout}"
            assert proc.stderr.strip() == errors[0], f"{command}: the doc shows another error"
        else:
            assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr}"
            assert "Traceback" not in proc.stderr, proc.stderr
        ran.append(command)
    assert len(ran) >= 20, ran
    assert len(skipped) <= 4, skipped
    assert (cwd / "lenet-onnx" / "model.onnx").exists() and (cwd / "report.html").exists()


@pytest.mark.slow
def test_the_plugin_walkthrough_runs_as_written(tmp_path):
    """docs/plugins.md section 4, in a copy of the template, in a virtualenv of its own (so that
    `pip install -e .` does not change the one the suite runs in) that sees tuner and torch."""
    shutil.copytree(ROOT / "docs" / "plugin-template", tmp_path / "tuner-mynet")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    # The reader has tuner installed; here it must be the venv's own `tuner` command, so that it
    # sees what `pip install -e .` adds to that venv.
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", "-e",
                    str(ROOT)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TUNER_DATA_DIR", "PYTHONPATH")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), TUNER_OFFLINE="1",
               HOME=str(tmp_path))
    steps = console_commands(ROOT / "docs" / "plugins.md")
    assert steps[0][0] == "pip install -e ." and len(steps) >= 6
    for command, shown, _ in steps:
        proc = run(command, tmp_path / "tuner-mynet", env)
        assert proc.returncode == 0, f"`{command}` failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr}"
        for line in shown:  # what the doc shows, up to the numbers that change with torch's version
            assert line.split(" (loss")[0] in proc.stdout, f"{command}: the doc shows {line!r}"
    assert "mynet" in run("tuner plugins", tmp_path / "tuner-mynet", env).stdout
