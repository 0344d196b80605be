"""Reading the official dataset files, and downloading them through torchvision.

The readers take the files as they are published (gzip or extracted), straight from a
possibly read-only folder: nothing is extracted to disk. Downloads go through torchvision's
own dataset classes (their mirrors and checksums) and only when files are missing.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tuner.errors import DataMissing

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file (MNIST's format), gzip-compressed or not, as a tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataMissing(f"{path} is not an IDX file; replace it with the official MNIST file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataMissing(f"{path} is truncated ({data.size} values, header says {dims})")
    return torch.from_numpy(data.reshape(dims).copy())


def find(folder: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``folder``."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def try_download(fetch: Callable[[], object], what: str, where: Path, fix: str) -> None:
    """Run a torchvision download; any failure (offline, say) becomes one :class:`DataMissing`."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # seconds: an unreachable mirror must not hang a study
    try:
        fetch()
    except Exception as e:  # network, HTTP, checksum, permissions: all mean "not here"
        cause = " ".join(str(e).split())  # torchvision's messages span several lines
        cause = cause if len(cause) <= 160 else cause[:157] + "..."
        raise DataMissing(
            f"{what} files are missing from {where} and the download failed "
            f"({type(e).__name__}: {cause}). {fix}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
