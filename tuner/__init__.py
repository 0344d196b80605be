"""tuner: finds good training hyperparameters for PyTorch image classifiers.

Architectures and datasets are plugins (entry-point groups ``tuner.architectures`` and
``tuner.datasets``); the contract they implement is :mod:`tuner.contract`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
