"""Shared fixtures: plugin packages installed once per session, real MNIST, and the storage
servers (a throwaway PostgreSQL cluster, moto's S3 server). Helpers live in helpers.py."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from helpers import PACKAGES, SHARED_MNIST, pip_install_target, real_server

# Started in the background by a non-interactive shell (`bash .ci/run &`), the test run inherits
# Ctrl-C ignored, and so would every tuner it starts: the Ctrl-C tests want it as a terminal has it.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# pytest-xdist gives its workers COLUMNS=80 (the width of a terminal it does not have); a tuner the
# tests start must see what a person's pipe or log shows it, as in a run on one process.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)


@pytest.fixture(scope="session")
def demo_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(PACKAGES / "demo", tmp_path_factory.mktemp("demo-site"))


@pytest.fixture(scope="session")
def slow_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(PACKAGES / "slow", tmp_path_factory.mktemp("slow-site"))


@pytest.fixture(scope="session")
def unfusable_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(PACKAGES / "unfusable", tmp_path_factory.mktemp("unfusable-site"))


@pytest.fixture(scope="session")
def broken_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(PACKAGES / "broken", tmp_path_factory.mktemp("broken-site"))


@pytest.fixture(scope="session")
def dup_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install_target(PACKAGES / "dup", tmp_path_factory.mktemp("dup-site"))


@pytest.fixture
def on_sys_path(monkeypatch: pytest.MonkeyPatch):
    """Put installed plugin folders on ``sys.path`` and re-read the registry in-process."""
    from tuner.plugins.registry import registry

    def add(*dirs: Path) -> None:
        for d in dirs:
            monkeypatch.syspath_prepend(str(d))
        registry.cache_clear()

    yield add
    registry.cache_clear()


@pytest.fixture
def mnist_dir() -> Path:
    raw = SHARED_MNIST / "MNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST is not at {raw} (only on the development machines)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def pg_cluster():
    from servers import postgres_cluster, why_no_postgres

    real_server(why_no_postgres(), "PostgreSQL storage tests")
    with postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def s3_env():
    """The environment of a real S3-compatible server (moto's, in its own process)."""
    from servers import s3_server, why_no_s3

    real_server(why_no_s3(), "S3 artifact tests")
    with s3_server() as env:
        yield env


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """Storage arguments for ``tuner optimize`` and the target for ``best``/``trials``:
    ``(kind, optimize_args, target)``. PostgreSQL gets a fresh database and a shared artifacts
    folder (a server study has no file to put one beside)."""
    if request.param == "sqlite":
        db = tmp_path / "studies" / "s.db"
        return "sqlite", ["--db", str(db)], str(db)
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.new_database()
    return "postgresql", ["--storage", url, "--artifacts", str(tmp_path / "shared-artifacts")], url


@pytest.fixture(scope="session")
def digits_data():
    """mlp-digits' data as a study prepares it (scikit-learn's digits: no download), on the CPU."""
    import torch

    from tuner.data import DataSettings, default_data_dir, load_data
    from tuner.plugins import load_pair

    return load_data(load_pair("mlp-digits"), default_data_dir(None), torch.device("cpu"), DataSettings())
