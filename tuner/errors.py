"""One exception tree. The CLI prints ``str(error)`` as one line and exits non-zero.

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations

import logging


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


class TrialFailed(Exception):
    """Ends one trial as FAIL with a reason; the study goes on. Not shown as an error."""


def quiet_libraries() -> None:
    """Keep the libraries' own log lines off a user's terminal (each process that runs trials).

    Optuna's per-trial lines would repeat the console's; torch.compile on a machine without
    CUDA warns that it found no CUDA runtime (true and harmless); SQLAlchemy logs a traceback
    when Ctrl-C lands inside a query and it closes the cursor afterwards, while the exception
    itself is what tuner reports."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    logging.getLogger("sqlalchemy").setLevel(logging.CRITICAL)
