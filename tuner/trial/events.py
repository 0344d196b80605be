"""What a running trial tells the live view, and the one codec that carries it between processes
(``--jobs`` workers and ``--ray`` actors put events on a queue; the main process delivers them).

An event is ``(kind, *args)`` where ``kind`` is the name of the :class:`Listener` method it
calls: encoded by :class:`Forward`, decoded by :func:`deliver`, nowhere else.
"""

from __future__ import annotations

from typing import Any, Protocol

#: The events a listener hears, by the name of the method each calls.
KINDS = ("trial_started", "epoch_done", "batch_done")


class Listener(Protocol):
    """What the console hears from a running study (the core never imports rich)."""

    def trial_started(self, number: int, hp: dict[str, Any], reference: bool, where: str = "") -> None:
        """Trial ``number`` starts with ``hp``; ``where``: the node and device it runs on, "" for
        this machine's CPU."""

    def epoch_done(self, number: int, epoch: int, epochs: int, result: Any) -> None:
        """Epoch ``epoch`` (1-based) of trial ``number`` ended with ``result`` (an ``EpochResult``)."""

    def batch_done(self, number: int, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        """Epoch ``epoch`` (1-based) of trial ``number`` has trained ``done`` of its ``batches``
        batches, ``images`` images in all."""


class Silent:
    """A listener that hears nothing (a study run with no live view)."""

    def trial_started(self, number: int, hp: dict[str, Any], reference: bool, where: str = "") -> None:
        pass

    def epoch_done(self, number: int, epoch: int, epochs: int, result: Any) -> None:
        pass

    def batch_done(self, number: int, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        pass


class Forward:
    """The listener of a trial in another process: each event put on ``events`` (anything with
    ``put``: a multiprocessing queue, Ray's queue) for :func:`deliver` on the other side."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def trial_started(self, number: int, hp: dict[str, Any], reference: bool, where: str = "") -> None:
        self.events.put(("trial_started", number, hp, reference, where))

    def epoch_done(self, number: int, epoch: int, epochs: int, result: Any) -> None:
        self.events.put(("epoch_done", number, epoch, epochs, result))

    def batch_done(self, number: int, epoch: int, epochs: int, done: int, batches: int, images: int) -> None:
        self.events.put(("batch_done", number, epoch, epochs, done, batches, images))


def deliver(event: tuple[Any, ...], listener: Listener | None) -> bool:
    """Hand a :class:`Forward` event to ``listener`` (None: dropped); False when ``event`` is not a
    listener's (a worker's own word to its main process)."""
    kind, *args = event
    if kind not in KINDS:
        return False
    if listener is not None:
        getattr(listener, kind)(*args)
    return True
