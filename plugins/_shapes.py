"""Sizing helpers shared by the builtin architectures."""

from __future__ import annotations

import torch
from torch import nn

from tuner.contract import ImageShape, PairRefused


def flat_features(features: nn.Module, shape: ImageShape, needs: str) -> int:
    """Width of ``features``' flattened output for one ``shape`` image.

    Raises :class:`PairRefused` (saying ``needs``) when the image is too small for it.
    """
    probe = torch.zeros(1, shape.channels, shape.height, shape.width)
    try:
        with torch.no_grad():
            out = features.eval()(probe)
    except RuntimeError:
        raise PairRefused(f"{needs}, got {shape.height}×{shape.width}") from None
    finally:
        features.train()
    if out.numel() == 0:
        raise PairRefused(f"{needs}, got {shape.height}×{shape.width}")
    return out.numel()


def dropout_of(hp_dropout: float | None, default: float) -> float:
    return default if hp_dropout is None else hp_dropout
