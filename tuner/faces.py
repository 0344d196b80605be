"""A package's face: the names it offers, each imported from its module when first used.

A package's ``__init__`` lists what it offers in ``OFFERS`` (name → module) and sets
``__all__ = sorted(OFFERS)`` and ``__getattr__ = face(__name__, OFFERS)``; ``from tuner.search
import PriorSampler`` then imports :mod:`tuner.search.prior` and nothing else, so a light
command (``tuner --help``, ``tuner best``) never pays for a package's heavy modules.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def face(package: str, offers: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``offers[name]`` is the module that defines ``name``."""

    def __getattr__(name: str) -> Any:
        module = offers.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
