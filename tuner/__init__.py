"""tuner: finds good training hyperparameters for PyTorch image classifiers.

Architectures and datasets are plugins (entry-point groups ``tuner.architectures`` and
``tuner.datasets``); the contract they implement is :mod:`tuner.contract`. From Python:
``tuner.optimize``, ``tuner.best`` and ``tuner.trials`` (:mod:`tuner.api`, docs/python-api.md).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "best", "optimize", "trials"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `import tuner` (and every plugin's `from tuner.contract import ...`)
    # stays as light as the package itself.
    if name in ("best", "optimize", "trials"):
        from tuner import api

        return getattr(api, name)
    raise AttributeError(f"module 'tuner' has no attribute {name!r}")
