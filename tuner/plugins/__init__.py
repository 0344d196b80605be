"""Plugins: finding the installed architectures and datasets, and checking them against the contract.

- :mod:`tuner.plugins.registry`: entry points read as metadata; a plugin imported when first used.
- :mod:`tuner.plugins.checks`: every contract check, in one place: the fields, the data a
  dataset gives, one tiny training batch.
- :mod:`tuner.plugins.pair`: an architecture and a dataset paired by name (``lenet-digits``).

The contract itself is :mod:`tuner.contract`; the author's kit is :mod:`tuner.testing`.
"""

from tuner.faces import face

OFFERS = {
    "Pair": "pair",
    "PluginInfo": "registry",
    "Registry": "registry",
    "build_model": "checks",
    "default_hyperparameters": "checks",
    "load_pair": "pair",
    "one_step": "checks",
    "splits_problems": "checks",
}
__all__ = sorted(OFFERS)
__getattr__ = face(__name__, OFFERS)
