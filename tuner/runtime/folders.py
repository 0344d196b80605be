"""The per-user cache folder, where tuner keeps what it can make again."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/tuner``, else ``~/.cache/tuner``: data files, split tensors, fetched weights."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "tuner"
