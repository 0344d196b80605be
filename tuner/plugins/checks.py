"""Every check of a plugin against the contract, in one place: its fields, the tensors a dataset
gives, and a model built and trained for one tiny batch.

Used when a plugin is loaded (its fields), before a study starts (validate at load, not at
trial 37), by ``tuner plugins --check`` and by the conformance kit :mod:`tuner.testing`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tuner.contract import CONTRACT_VERSION, Architecture, Dataset, Hyperparameters, ImageShape, Splits
from tuner.errors import PairRefused, PluginError

if TYPE_CHECKING:  # listing plugins checks their fields without importing torch
    import torch
    from torch import nn

Kind = Literal["architecture", "dataset"]
_CONTRACT_TYPES: dict[Kind, type] = {"architecture": Architecture, "dataset": Dataset}


def default_hyperparameters(arch: Architecture) -> Hyperparameters:
    """The reference settings, or plain ones for an architecture that has none."""
    if arch.reference is not None:
        return arch.reference
    return Hyperparameters(lr=1e-3, batch_size=64, dropout=0.5 if arch.has_dropout else None)


def build_model(
    arch: Architecture, shape: ImageShape, hp: Hyperparameters, *, name: str, distribution: str
) -> nn.Module:
    """``arch.build`` with its failures named: refusals pass through, the rest are the plugin's."""
    from torch import nn

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
    """One forward/backward step on ``x, y`` (already at the model's input size)."""
    import torch
    import torch.nn.functional as F

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


# ---------------------------------------------------------------------------------------------
# The fields of a plugin, checked when it is loaded.


def check_contract(kind: Kind, obj: Any, *, name: str, distribution: str) -> None:
    """Raise :class:`PluginError` unless ``obj`` is a well-formed plugin of ``kind``.

    Checks the type, the contract version (before any field, so a plugin written for another
    version gets that message and not an ``AttributeError``) and each field's value.
    """
    expected = _CONTRACT_TYPES[kind]

    def fail(reason: str) -> PluginError:
        return PluginError(kind, name, distribution, reason)

    version = getattr(obj, "contract_version", None)
    if isinstance(version, int) and version != CONTRACT_VERSION:
        side = "a newer tuner: upgrade tuner" if version > CONTRACT_VERSION else (
            "an older tuner: update the plugin to the current contract")
        raise fail(
            f"written for plugin contract version {version}, this tuner speaks version "
            f"{CONTRACT_VERSION} ({side})"
        )
    if not isinstance(obj, expected):
        missing = [
            f.name for f in dataclasses.fields(expected)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and not hasattr(obj, f.name)
        ]
        what = f"missing field(s) {', '.join(missing)}; " if missing else ""
        raise fail(
            f"entry point must name a tuner.contract.{expected.__name__}, got "
            f"{type(obj).__name__}; {what}see docs/plugins.md"
        )
    problems = _architecture_problems(obj) if kind == "architecture" else _dataset_problems(obj)
    if problems:
        raise fail("; ".join(problems))


def _architecture_problems(arch: Architecture) -> list[str]:
    problems = []
    if not callable(arch.build):
        problems.append("field 'build' must be callable as build(shape, hp) -> nn.Module")
    if arch.input_size is not None and (
        len(arch.input_size) != 2 or min(arch.input_size) < 1
    ):
        problems.append(f"field 'input_size' must be (height, width), got {arch.input_size!r}")
    if arch.reference is not None:
        try:
            arch.reference.validate()
        except (ValueError, AttributeError) as e:
            problems.append(f"field 'reference': {e}")
    return problems


def _dataset_problems(ds: Dataset) -> list[str]:
    problems = []
    if not callable(ds.load):
        problems.append("field 'load' must be callable as load(request) -> Splits")
    if not (isinstance(ds.channels, int) and ds.channels >= 1):
        problems.append(f"field 'channels' must be a positive int, got {ds.channels!r}")
    if len(ds.image_size) != 2 or min(ds.image_size) < 1:
        problems.append(f"field 'image_size' must be (height, width), got {ds.image_size!r}")
    if len(ds.class_names) < 2:
        problems.append(f"field 'class_names' needs at least 2 classes, got {len(ds.class_names)}")
    for field_name in ("mean", "std"):
        values = getattr(ds, field_name)
        if len(values) != ds.channels:
            problems.append(
                f"field {field_name!r} needs one value per channel ({ds.channels}), "
                f"got {len(values)}"
            )
    if any(s <= 0 for s in ds.std):
        problems.append("field 'std' must be positive")
    return problems


# ---------------------------------------------------------------------------------------------
# The tensors a dataset gives.


def splits_problems(dataset: Dataset, splits: Splits) -> list[str]:
    """What is wrong with ``splits`` given what ``dataset`` declares (empty when nothing)."""
    import torch

    if not isinstance(splits, Splits):
        return [f"load() must return tuner.contract.Splits, got {type(splits).__name__}"]
    problems = []
    expected = (dataset.channels, *dataset.image_size)
    for part in ("train", "test"):
        images = getattr(splits, f"{part}_images")
        labels = getattr(splits, f"{part}_labels")
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            problems.append(
                f"{part}_images must be (N, {', '.join(map(str, expected))}) as declared, "
                f"got {tuple(images.shape)}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            problems.append(f"{part}_labels must be (N,) matching {part}_images")
        elif labels.dtype != torch.int64:
            problems.append(f"{part}_labels must be int64, got {labels.dtype}")
        elif len(labels) and (labels.min() < 0 or labels.max() >= dataset.num_classes):
            problems.append(
                f"{part}_labels must lie in 0..{dataset.num_classes - 1}, got "
                f"{int(labels.min())}..{int(labels.max())}"
            )
        if images.dtype != torch.uint8 and not images.is_floating_point():
            problems.append(f"{part}_images must be uint8 or floating point, got {images.dtype}")
        if len(images) == 0:
            problems.append(f"{part} split is empty")
    return problems
