"""Which process runs a trial, and whether that process is still alive.

A trial records its process (``records.PROCESS``) as ``{"host", "pid", "started"}``. ``host`` is the machine's name,
its boot and its pid namespace, so two containers or two machines that share a hostname are
never taken for one another; ``started`` is the process's start time (``/proc/<pid>/stat``),
so a pid reused by another process is not taken for the trial's.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Any


@functools.cache
def host() -> str:
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(source) if source.endswith("/pid") else Path(source).read_text().strip())
        except OSError:
            parts.append("?")
    return "/".join(parts)


def _started(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None where there is no /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def identity() -> dict[str, Any]:
    pid = os.getpid()
    return {"host": host(), "pid": pid, "started": _started(pid)}


def known_dead(record: Any) -> bool:
    """True only when ``record`` names a process of this host that is surely gone. A process
    of another host, or one this host cannot check, is not known dead (the heartbeat's grace
    decides for those)."""
    if not isinstance(record, dict) or record.get("host") != host():
        return False
    pid, started = record.get("pid"), record.get("started")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    reused = started is not None and _started(pid) not in (None, started)
    return reused or _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still has a pid; it runs nothing."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
