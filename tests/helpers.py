"""What the tests share: the real CLI run as a user runs it, plugin packages pip-installed,
dataset files in their real formats, and the rule that a storage test is never silently passed."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = Path(__file__).resolve().parent / "packages"
SHARED_MNIST = ROOT.parent / "shared" / "data"
TUNER = shutil.which("tuner", path=str(Path(sys.executable).parent)) or "tuner"


def run_tuners_together(*args: str, cwd: Path, processes: int = 2) -> None:
    """Start ``processes`` identical ``tuner`` commands at the same moment (two terminals, two
    machines) and wait until every one has exited 0."""
    env = {**os.environ, "TUNER_OFFLINE": "1"}
    runs = [subprocess.Popen([TUNER, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(processes)]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, out + err


def run_tuner(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
              check: bool | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``tuner`` command as a user would, offline, in ``cwd``."""
    full_env = {**os.environ, "TUNER_OFFLINE": "1", "TUNER_DATA_DIR": str(cwd / "data"),
                "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run([TUNER, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check is True:
        assert proc.returncode == 0, f"tuner {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def new_study(factory: pytest.TempPathFactory, folder: str, *args: str) -> Path:
    """A folder in which ``tuner optimize *args`` has run (for a module-scoped fixture)."""
    cwd = factory.mktemp(folder)
    run_tuner(*args, cwd=cwd, check=True)
    return cwd


def lenet_digits_db(cwd: Path) -> Path:
    """Where ``tuner optimize --plugin lenet-digits`` run in ``cwd`` keeps its study."""
    return cwd / "studies" / "lenet-digits.db"


def wait_for_trials(db: Path, study: str, ready, timeout: float = 180,
                    proc: subprocess.Popen | None = None) -> list:
    """Poll a study that a running ``tuner optimize`` (``proc``) writes until ``ready(trials)``
    holds. Polls with plain ``optuna.load_study``, as a user's script would, from the moment the
    file appears. If ``proc`` ends first, or time runs out, the failure shows what it printed."""
    import time

    import optuna

    def gave_up(why: str) -> AssertionError:
        if proc is None:
            return AssertionError(f"{db}: {why}")
        if proc.poll() is None:
            if os.getpgid(proc.pid) == proc.pid:  # its own group (start_new_session): workers too
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        out, err = proc.communicate(timeout=60)
        return AssertionError(f"{db}: {why}; tuner exited {proc.returncode}:\n{out}\n{err}")

    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.2)
        if proc is not None and proc.poll() is not None:
            raise gave_up("the run ended before the trials got there")
        if not db.exists():  # loading would create it
            continue
        try:
            trials = optuna.load_study(study_name=study, storage=f"sqlite:///{db}").trials
        except Exception:  # still being created
            continue
        if ready(trials):
            return trials
    raise gave_up(f"the trials never got there in {timeout:.0f} s")


def training(trials: list) -> int:
    """How many trials are running and have stored an epoch."""
    return sum(1 for t in trials if t.state.name == "RUNNING" and t.user_attrs.get("history"))


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """A user error: non-zero exit, one ``error:`` line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def pip_install_target(package: Path, target: Path) -> Path:
    """Install a plugin package into ``target`` (offline: no build isolation, no dependencies)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
         "--no-index", "--target", str(target), str(package)],
        check=True, capture_output=True, text=True,
    )
    shutil.rmtree(package / "build", ignore_errors=True)
    for egg in package.glob("**/*.egg-info"):
        shutil.rmtree(egg, ignore_errors=True)
    return target


def pythonpath(*dirs: Path) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join(str(d) for d in dirs)}


def write_cifar10(root: Path, per_batch: int = 30, archive: bool = False) -> Path:
    """Write CIFAR-10 in the official python format (five train batches, one test batch):
    pickled dicts with ``b"data"`` (N, 3072) uint8 and ``b"labels"``. Labels cycle 0..9."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [int(i % 10) for i in range(per_batch)]
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with (folder / name).open("wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, f)
    if archive:
        with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
        shutil.rmtree(folder)
    return root


def read_json(text: str) -> dict:
    return json.loads(text)


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, train: int, test: int) -> Path:
    """MNIST's four files in the official format (random pixels, labels cycling 0..9) under
    ``root/MNIST/raw``; returns ``root``, a data folder as --data-dir takes it."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("t10k", test)):
        write_idx_gz(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx_gz(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def real_server(why: str | None, what: str) -> None:
    """Skip a test whose server cannot start here, with the reason; on CI (which installs
    every server and extra) fail it instead: a storage test is never silently passed."""
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} cannot run: {why}")
        pytest.skip(why)


def need_extra(module: str, extra: str) -> None:
    """An optional extra's test: skipped here without it, failed on CI (which installs them all)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        real_server(f"{module} is not installed (pip install 'tuner[{extra}]')", f"the tuner[{extra}] test")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``path`` (a file or a folder) made immutable for real: chattr +i binds root too, as CI runs."""
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("chattr +i is not possible here (needs root on ext4 or similar)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
