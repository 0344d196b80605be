"""Contract checks that need a model: build it, run one tiny batch, compare shapes.

Used before a study starts (validate at load, not at trial 37), by ``tuner plugins --check``
and by the conformance kit :mod:`tuner.testing`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape
from tuner.errors import PairRefused, PluginError


def default_hyperparameters(arch: Architecture) -> Hyperparameters:
    """The reference settings, or plain ones for an architecture that has none."""
    if arch.reference is not None:
        return arch.reference
    return Hyperparameters(lr=1e-3, batch_size=64, dropout=0.5 if arch.has_dropout else None)


def build_model(
    arch: Architecture, shape: ImageShape, hp: Hyperparameters, *, name: str, distribution: str
) -> nn.Module:
    """``arch.build`` with its failures named: refusals pass through, the rest are the plugin's."""
    try:
        model = arch.build(shape, hp)
    except PairRefused:
        raise
    except Exception as e:  # a bug in the plugin, reported as the plugin's
        raise PluginError(
            "architecture", name, distribution, f"build() raised {type(e).__name__}: {e}"
        ) from e
    if not isinstance(model, nn.Module):
        raise PluginError(
            "architecture", name, distribution,
            f"build() must return a torch.nn.Module, got {type(model).__name__}",
        )
    return model


@dataclass(frozen=True)
class StepReport:
    parameters: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    loss: float


def one_step(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, shape: ImageShape, *, name: str,
    distribution: str,
) -> StepReport:
    """One forward/backward/SGD step on ``x, y`` (already at the model's input size)."""
    def fail(reason: str) -> PluginError:
        return PluginError("architecture", name, distribution, reason)

    model.train()
    try:
        out = model(x)
    except Exception as e:  # shape mismatches surface here as RuntimeError
        raise fail(
            f"forward pass on a batch of shape {tuple(x.shape)} raised {type(e).__name__}: {e}"
        ) from e
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), shape.num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise fail(
            f"output must be (batch, {shape.num_classes}) logits for {shape.num_classes} "
            f"classes, got {got}; size the last layer from shape.num_classes"
        )
    loss = F.cross_entropy(out, y)
    loss.backward()
    if not math.isfinite(loss.item()):
        raise fail(f"the loss of one step on fresh weights is {loss.item()}")
    if not any(p.grad is not None for p in model.parameters()):
        raise fail("no parameter received a gradient; is the model built from nn.Modules?")
    return StepReport(
        parameters=sum(p.numel() for p in model.parameters()),
        input_shape=tuple(x.shape),
        output_shape=tuple(out.shape),
        loss=loss.item(),
    )
