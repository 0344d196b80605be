"""Files written whole or not at all: written beside their place, flushed, then renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def replaced(path: Path, *, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` when the block ends, or is gone if the block raises;
    ``path`` is never seen half written, by this process or another. ``durable``: on the disk
    (``fsync``) before the rename, so that a power cut leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def copy_into(source: BinaryIO, target: BinaryIO, chunk: int = 1 << 20) -> None:
    """Everything ``source`` still holds, written to ``target`` a chunk at a time."""
    while block := source.read(chunk):
        target.write(block)
