"""The start-up heap kept out of the garbage collector's walks: while a command starts, and while trials run."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import optuna

_start_up_frozen = False  # set by collector_paused, given back by LongLivedHeap when the study ends


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's garbage collector off while a command starts (imports, data, the study), and
    what start-up made frozen when it ends.

    Importing torch, torch._dynamo, Optuna and SQLAlchemy makes hundreds of thousands of objects
    that live as long as the process and almost no garbage, yet the collector walks the growing
    heap again and again while they are made. Switched back on as they were, its next pass would
    walk them all once more, and :class:`LongLivedHeap` again before freezing them: so they are
    frozen here, without a pass, as CPython's documentation of ``gc.freeze`` advises (disable
    early, freeze, enable). Start-up's little garbage (small objects, no tensor) is frozen with
    them and collected when the study ends and :class:`LongLivedHeap` gives the heap back. A
    process that froze its own heap before is left as it was; so is one whose start-up failed.
    What it saves: docs/benchmarks.md, benchmark 8."""
    global _start_up_frozen
    was_on, mine = gc.isenabled(), not gc.get_freeze_count()
    gc.disable()
    try:
        yield
        if mine:
            gc.freeze()
            _start_up_frozen = True
    finally:
        if was_on:
            gc.enable()


class LongLivedHeap:
    """While trials run: what lives as long as the study (torch, Optuna and SQLAlchemy's
    objects, the data) is moved out of the garbage collector's sight with ``gc.freeze()``, and
    put back after.

    Python's full collection walks every tracked object, and one that falls in the middle of a
    short trial costs it a visible share of its time (docs/benchmarks.md, benchmark 2); the
    first trial also imports torch._dynamo (torch.optim does, on first use). Frozen, a full
    collection walks only what the study made since. Entered, it collects once and freezes
    (from Python), or only adds what came since when :func:`collector_paused` froze start-up
    (``tuner optimize``). Used as an Optuna callback, this freezes once more after the first
    trial, so that what it imported and cached is left out too. A process that already freezes
    its own heap (a pre-forking server) is left alone. Frozen objects are still freed when
    nothing refers to them; only reference cycles among them wait until the study ends.
    """

    def __init__(self) -> None:
        self._owned = False
        self._settled = False

    def __enter__(self) -> LongLivedHeap:
        global _start_up_frozen
        if _start_up_frozen:  # frozen by collector_paused a moment ago: only what came since is added
            self._owned, _start_up_frozen = True, False
            gc.freeze()
        elif not gc.get_freeze_count():
            self._owned = True
            self._freeze()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._owned:
            gc.unfreeze()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self._owned and not self._settled:
            self._settled = True
            self._freeze()

    @staticmethod
    def _freeze() -> None:
        gc.collect()  # so that no garbage is frozen for the whole study
        gc.freeze()
