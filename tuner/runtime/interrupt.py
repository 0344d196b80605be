"""Ctrl-C, SIGTERM and SIGHUP: a stop asked for by a signal, raised where stopping is safe: at
once while a model computes, never half way through a database write.

Python raises KeyboardInterrupt wherever the main thread happens to be. Landing inside
SQLAlchemy, between SQLite's ``BEGIN IMMEDIATE`` and its commit, it leaves a connection
holding the write lock that nobody will release; storing the interrupted trial then waits on
the process's own lock (a worker whose main process was killed hung there). So while trials
run, a signal is only *noted* (:func:`request`) and raised by :func:`check` -- except inside
:func:`interruptible`, the blocks where training and evaluation compute and nothing is
written: there it is raised at once, after the tensor operation running (a batch of AlexNet
at 224x224 on a CPU takes tens of seconds; one of its operations, a few). A second Ctrl-C is
raised at once anywhere: the person insists.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_pending: KeyboardInterrupt | None = None
_at_once = False  # inside interruptible(): a stop noted is raised by the handler itself


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (exit status 143 instead of 130)."""

    exit_status = 128 + signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP (the terminal closed), handled as SIGTERM is (exit status 129)."""

    exit_status = 128 + signal.SIGHUP


def stop_like_ctrl_c() -> None:
    """``kill``, a scheduler's preemption, systemd, a closed terminal: each stops the process as
    Ctrl-C does, the running trials stored (SIGTERM raises :class:`Terminated`, SIGHUP :class:`HungUp`)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)


def _terminate(signum: int, frame: object) -> None:
    raise HungUp if signum == signal.SIGHUP else Terminated


def exit_status(stop: BaseException) -> int:
    """The exit status of a process that stopped on ``stop``: 143 for SIGTERM, 129 for SIGHUP, else 130."""
    return getattr(stop, "exit_status", 130)


def request(stop: KeyboardInterrupt) -> None:
    """Note a stop; the first one is the one raised."""
    global _pending
    if _pending is None:
        _pending = stop


def pending() -> KeyboardInterrupt | None:
    return _pending


def check() -> None:
    """Raise the stop asked for, if any: call it where stopping leaves nothing half done."""
    if _pending is not None:
        raise type(_pending)()


def raise_if_computing(stop: KeyboardInterrupt) -> None:
    """In a signal handler, after noting ``stop``: raise it now if training is computing."""
    if _at_once:
        raise stop


@contextmanager
def interruptible() -> Iterator[None]:
    """A block that computes and writes nothing (a training epoch, an evaluation): a stop
    asked for inside it is raised at once, not at the next :func:`check`."""
    global _at_once
    check()
    before, _at_once = _at_once, True
    try:
        yield
    finally:
        _at_once = before


def clear() -> None:
    global _pending
    _pending = None


def stop_study(study: Any, trial: Any) -> None:
    """Optuna callback: a stop asked for while a trial was being stored ends the study there,
    instead of failing the next trial at its first batch."""
    if _pending is not None:
        study.stop()


@contextmanager
def deferred(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)) -> Iterator[None]:
    """Within the block, a signal whose handler raises KeyboardInterrupt (Python's own for
    Ctrl-C, :func:`stop_like_ctrl_c`'s for SIGTERM) is noted instead, and raised on leaving the block if the
    block did not raise it itself."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Callable[[int, Any], Any]] = {}

    def note(signum: int, frame: Any) -> None:
        if _pending is not None and signum == signal.SIGINT:
            raise type(_pending)()  # a second Ctrl-C: at once
        try:
            previous[signum](signum, frame)
        except KeyboardInterrupt as stop:
            request(stop)
            raise_if_computing(stop)

    for signum in signums:
        handler = signal.getsignal(signum)
        if callable(handler):
            previous[signum] = handler
            signal.signal(signum, note)
    clear()
    try:
        yield
        check()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        clear()
