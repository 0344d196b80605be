"""How a dataset's training split is cut: the validation fraction, the caps ``--max-train`` sets,
and the settings a study, a recipe and a benchmark cut it by (kept free of torch, so that the
options that name them import nothing heavy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_VAL_FRACTION = 0.1  # of the training split, held out for validation


def validation_cap(max_train: int | None, val_fraction: float) -> int | None:
    """Validation examples that keep the split's proportion to ``max_train`` training ones."""
    if max_train is None:
        return None
    return max(1, round(max_train * val_fraction / (1 - val_fraction)))


@dataclass(frozen=True)
class DataSettings:
    """How a study cuts its data: the split's seed, the validation fraction and the caps, stored
    under these keys in a study's provenance and in every trial's recipe."""

    seed: int = 0
    val_fraction: float = DEFAULT_VAL_FRACTION
    max_train: int | None = None
    max_val: int | None = None

    @classmethod
    def capped(cls, seed: int, max_train: int | None, val_fraction: float = DEFAULT_VAL_FRACTION) -> DataSettings:
        """A new study's settings: ``--max-train`` caps the validation part to the split's
        proportion too (3,000 training images: 333 for validation, not 6,000)."""
        return cls(seed, val_fraction, max_train, validation_cap(max_train, val_fraction))

    @classmethod
    def of(cls, stored: Mapping[str, Any]) -> DataSettings:
        """The settings a provenance, a recipe or a settings dict holds (absent keys: the defaults)."""
        return cls(stored.get("seed", 0), stored.get("val_fraction", DEFAULT_VAL_FRACTION),
                   stored.get("max_train"), stored.get("max_val"))

    def as_dict(self) -> dict[str, Any]:
        """The stored form: ``seed``, ``val_fraction``, ``max_train``, ``max_val``, in that order."""
        return asdict(self)
