"""One exception tree. The CLI prints ``str(error)`` as one line and exits non-zero.

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations


class TunerError(Exception):
    """Base of every error meant for a person rather than a traceback."""

    exit_code = 2


class UsageError(TunerError):
    """An impossible option value or combination."""


class PluginNotFound(TunerError):
    """No installed plugin has the name asked for."""


class PluginError(TunerError):
    """A plugin failed to import, broke the contract, or is claimed twice.

    Args:
        kind: ``"architecture"`` or ``"dataset"``.
        name: The entry-point name.
        distribution: The distribution (``pip`` package) that registers it.
        reason: What was wrong, and what the plugin author should do.
    """

    def __init__(self, kind: str, name: str, distribution: str, reason: str) -> None:
        self.kind = kind
        self.name = name
        self.distribution = distribution
        self.reason = reason
        super().__init__(f"{kind} plugin {name!r} (from {distribution}): {reason}")


class PairRefused(TunerError):
    """An architecture cannot take a dataset's shape. Plugins raise it from ``build``.

    The message is the reason, e.g. ``"needs images of at least 12×12, got 8×8"``.
    """


class DataMissing(TunerError):
    """Dataset files are not where they were looked for and could not be downloaded."""


class StudyError(TunerError):
    """A study database is missing, not a study, corrupt, empty or ambiguous."""


class WeightsError(StudyError):
    """Weights could not be written (disk full, read-only folder) or read back (damaged)."""


class TrialFailed(Exception):
    """Ends one trial as FAIL with a reason; the study goes on. Not shown as an error."""


def message_line(e: BaseException, limit: int = 300) -> str:
    """The first line of ``e``'s message (a driver's SQL dump or a traceback-like text cut off),
    or its type's name when it says nothing."""
    text = str(e).strip()
    return text.splitlines()[0][:limit] if text else type(e).__name__


def first_line(e: BaseException, limit: int = 300) -> str:
    """``TypeName: first line of the message`` (or the type alone): how tuner names a library's error."""
    text = str(e).strip()
    return f"{type(e).__name__}: {message_line(e, limit)}" if text else type(e).__name__
