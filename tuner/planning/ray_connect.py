"""Reaching the Ray cluster ``--ray`` names: joined (or started, for ``local``) before anything is made."""

from __future__ import annotations

import logging
import socket
from typing import Any

from tuner.errors import UsageError, first_line


def connect(address: str) -> Any:
    """``ray.init`` for ``--ray ADDRESS`` (``local`` starts Ray in this process's machine)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'tuner[ray]'") from None
    if ray.is_initialized():
        return ray
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    _reachable(address)
    try:
        if address == "local":
            ray.init(include_dashboard=False, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, ValueError, RuntimeError) as e:
        said = first_line(e, 300).split(". ")[0]
        raise UsageError(f"--ray {address}: no Ray cluster to join ({said}); start one with "
                         "`ray start --head`, or run with --ray local") from None
    return ray


def _reachable(address: str) -> None:
    """A HOST:PORT with nothing listening is said at once (Ray itself retries for a minute)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        if address in ("auto", "local"):
            return
        raise UsageError(f"--ray {address}: give auto, local, or the head's HOST:PORT (ray start --head says it)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise UsageError(f"--ray {address}: no Ray head answers there ({e.strerror or e}); start one with "
                         "`ray start --head`, or run with --ray local") from None
