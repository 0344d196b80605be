"""What a run may still spend, one rule for every way it runs trials (here, ``--jobs`` workers,
``--fuse`` cohorts, ``--ray`` actors): trials left to start, ``--timeout``'s deadline, and the
stop ``--trials auto`` or a callback decides."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any


class _Count:
    """This process's own count of the trials taken (the shape of a ``multiprocessing.Value``)."""

    def __init__(self) -> None:
        self.value = 0

    def get_lock(self) -> Any:
        return contextlib.nullcontext()


class Budget:
    """``trials`` to start (None: no count), until ``deadline`` (a ``time.time()``; None: none), while
    ``closed()`` says False. ``count`` holds the trials taken: this process's own, or a
    ``multiprocessing.Value`` that ``--jobs`` workers share, so that ``--trials`` is exact across them."""

    def __init__(self, trials: int | None, deadline: float | None = None,
                 closed: Callable[[], bool] | None = None, count: Any = None) -> None:
        self.trials, self.deadline, self.closed = trials, deadline, closed
        self.count = count if count is not None else _Count()

    @classmethod
    def lasting(cls, trials: int | None, timeout: float | None, closed: Callable[[], bool] | None = None,
                count: Any = None) -> Budget:
        """A budget whose deadline is ``timeout`` seconds from now."""
        return cls(trials, None if timeout is None else time.time() + timeout, closed, count)

    @property
    def taken(self) -> int:
        return self.count.value

    def _ended(self) -> bool:
        """The deadline passed, or the stop rule closed the run."""
        return (self.deadline is not None and time.time() >= self.deadline) or \
            (self.closed is not None and self.closed())

    def spent(self) -> bool:
        """Whether no further trial may start: the count reached, the deadline passed, or closed."""
        with self.count.get_lock():
            counted = self.trials is not None and self.count.value >= self.trials
        return counted or self._ended()

    def take(self, most: int = 1) -> int:
        """Take up to ``most`` trials to start; how many (0 when the budget is spent)."""
        if self._ended():
            return 0
        with self.count.get_lock():
            taken = most if self.trials is None else max(0, min(most, self.trials - self.count.value))
            self.count.value += taken
        return taken

    def give_back(self, count: int) -> None:
        """Trials taken and not started (a cohort that came out smaller) go back."""
        with self.count.get_lock():
            self.count.value -= count

    def close(self) -> None:
        """No further trial starts anywhere the count is shared (the running ones finish)."""
        with self.count.get_lock():
            if self.trials is not None:
                self.count.value = max(self.count.value, self.trials)
