"""A dataset's files loaded once per process and checked against its declaration; a slow load
kept as a tensor file in the user's cache."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import time
from pathlib import Path

import torch

from tuner import __version__
from tuner.contract import DataRequest, Dataset, Splits
from tuner.errors import PluginError
from tuner.plugins.checks import splits_problems
from tuner.runtime.files import replaced
from tuner.runtime.folders import cache_root


def default_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$TUNER_DATA_DIR``, else the per-user cache directory."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env := os.environ.get("TUNER_DATA_DIR"):
        return Path(env).expanduser().absolute()
    return cache_root() / "data"


def downloads_allowed() -> bool:
    """Downloads are tried unless ``TUNER_OFFLINE`` is set (to anything but 0/false)."""
    return os.environ.get("TUNER_OFFLINE", "").lower() in ("", "0", "false", "no")


_SPLITS_CACHE: dict[tuple[str, Path], Splits] = {}
#: A load slower than this is kept as a tensor file (reading a cached file back is much faster: docs/benchmarks.md).
CACHE_AFTER_S = 0.2
_MAX_FINGERPRINT_FILES = 10_000


def load_splits(name: str, dataset: Dataset, data_dir: Path, distribution: str = "?") -> Splits:
    """Load ``dataset`` once per process and check it against its declaration. A load that
    takes long is kept in the user's cache folder as a tensor file, used again while the files
    under ``data_dir`` (names, sizes, modification times) and the plugin's version are the same."""
    key = (name, data_dir.resolve())
    if key not in _SPLITS_CACHE:
        cached = _cache_file(name, distribution, data_dir)
        splits = _read_cache(cached) if cached is not None else None
        if splits is None:
            started = time.perf_counter()
            splits = dataset.load(DataRequest(data_dir=data_dir, download=downloads_allowed()))
            problems = splits_problems(dataset, splits)
            if problems:
                raise PluginError("dataset", name, distribution, "; ".join(problems))
            if cached is not None and time.perf_counter() - started >= CACHE_AFTER_S:
                _write_cache(cached, splits)
        _SPLITS_CACHE[key] = splits
    return _SPLITS_CACHE[key]


def splits_cache_folder() -> Path:
    return cache_root() / "splits"


def _cache_file(name: str, distribution: str, data_dir: Path) -> Path | None:
    """Where ``name``'s tensors from ``data_dir`` are kept; None when the folder cannot be
    fingerprinted (missing, or too many files to list cheaply)."""
    root = data_dir.resolve()
    if not root.is_dir():
        return None
    try:
        version = importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        version = "?"
    digest = hashlib.sha256(f"{name}\0{distribution}\0{version}\0{__version__}\0{root}".encode())
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            count += 1
            if count > _MAX_FINGERPRINT_FILES:
                return None
            path = Path(folder, file)
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return splits_cache_folder() / f"{name}-{digest.hexdigest()[:24]}.pt"


def _read_cache(path: Path) -> Splits | None:
    try:
        parts = torch.load(path, weights_only=True)  # tensors only: nothing in the file can run
        return Splits(parts["train_images"], parts["train_labels"], parts["test_images"], parts["test_labels"])
    except Exception:  # absent, damaged, or from another format: load from the source again
        return None


def _write_cache(path: Path, splits: Splits) -> None:
    # A read-only or full cache folder: the next run loads from the source again.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with replaced(path, durable=False) as tmp:  # whole or not at all: two processes may write it at once
            torch.save({"train_images": splits.train_images, "train_labels": splits.train_labels,
                        "test_images": splits.test_images, "test_labels": splits.test_labels}, tmp)
