"""How a dataset's training split is cut: the validation fraction and the caps ``--max-train``
sets (kept free of torch, so that the options that name them import nothing heavy)."""

from __future__ import annotations

DEFAULT_VAL_FRACTION = 0.1  # of the training split, held out for validation


def validation_cap(max_train: int | None, val_fraction: float) -> int | None:
    """Validation examples that keep the split's proportion to ``max_train`` training ones."""
    if max_train is None:
        return None
    return max(1, round(max_train * val_fraction / (1 - val_fraction)))
