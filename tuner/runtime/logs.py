"""The libraries' own log lines kept off a person's terminal."""

from __future__ import annotations

import logging


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
