"""The plugin contract: everything a third-party architecture or dataset plugin imports.

An *architecture plugin* is an :class:`Architecture` object named by an entry point in the
``tuner.architectures`` group; a *dataset plugin* is a :class:`Dataset` object in the
``tuner.datasets`` group::

    [project.entry-points."tuner.architectures"]
    mynet = "mypkg.models:mynet"        # mynet = Architecture(build=..., ...)

    [project.entry-points."tuner.datasets"]
    mydata = "mypkg.data:mydata"        # mydata = Dataset(load=..., ...)

Plugins describe; the core runs. A plugin builds a model or gives tensors. It never creates a
study, touches storage or picks a device.

The contract is versioned by :data:`CONTRACT_VERSION`. A plugin states the version it was
written for in ``contract_version``; the registry refuses other versions with a message
instead of an ``AttributeError`` half-way through a study.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from tuner.errors import PairRefused

if TYPE_CHECKING:  # annotations only: reading a study's settings need not import torch
    import torch
    from torch import nn

__all__ = [
    "CONTRACT_VERSION",
    "OPTIMIZERS",
    "SCHEDULERS",
    "Architecture",
    "Choice",
    "DataRequest",
    "Dataset",
    "Fixed",
    "FloatRange",
    "Hyperparameters",
    "ImageShape",
    "IntRange",
    "PairRefused",
    "Param",
    "Splits",
]

#: Version of this contract. Bumped when a field is added without a default, removed or
#: changes meaning.
CONTRACT_VERSION = 1

OptimizerName = Literal["sgd", "adam", "adamw"]
SchedulerName = Literal["plateau", "step", "none"]
#: The optimizer and scheduler names a :class:`Hyperparameters` takes (the CLI and checks read them here).
OPTIMIZERS: tuple[str, ...] = get_args(OptimizerName)
SCHEDULERS: tuple[str, ...] = get_args(SchedulerName)


@dataclass(frozen=True)
class ImageShape:
    """What a model is built for: the images it sees and the classes it predicts.

    Args:
        channels: Input channels (1 for MNIST, 3 for CIFAR-10).
        height: Input height in pixels, after any resize the architecture asked for.
        width: Input width in pixels.
        num_classes: Width of the model's last layer.
    """

    channels: int
    height: int
    width: int
    num_classes: int


# ---------------------------------------------------------------------------------------------
# Search-space parameters. A search space maps a hyperparameter name to one of these.


@dataclass(frozen=True)
class FloatRange:
    """A float in ``[low, high]``.

    Args:
        low: Lower bound.
        high: Upper bound.
        log: Sample on a log scale (learning rates, weight decay).
        or_zero: Zero is a value of its own too (``weight_decay``: log-uniform, or none).
    """

    low: float
    high: float
    log: bool = False
    or_zero: bool = False

    def contains(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        return (self.or_zero and value == 0) or self.low <= value <= self.high

    def describe(self) -> str:
        text = f"{self.low:g}..{self.high:g}" + (" log" if self.log else "")
        return text + (" or 0" if self.or_zero else "")


@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]``, every ``step``-th value, optionally on a log scale."""

    low: int
    high: int
    log: bool = False
    step: int = 1

    def contains(self, value: Any) -> bool:
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and self.low <= value <= self.high
            and (value - self.low) % self.step == 0
        )

    def describe(self) -> str:
        return f"{self.low}..{self.high}" + (" log" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """One of a few values (batch sizes, optimizer names)."""

    options: tuple[Any, ...]

    def contains(self, value: Any) -> bool:
        return value in self.options

    def describe(self) -> str:
        return "{" + ", ".join(str(o) for o in self.options) + "}"


@dataclass(frozen=True)
class Fixed:
    """Not searched: always this value."""

    value: Any

    def contains(self, value: Any) -> bool:
        return value == self.value

    def describe(self) -> str:
        return f"= {self.value}"


Param = FloatRange | IntRange | Choice | Fixed


# ---------------------------------------------------------------------------------------------
# Hyperparameters of one training run.


@dataclass(frozen=True)
class Hyperparameters:
    """The settings of one training run. An architecture's ``reference`` is one of these.

    Args:
        lr: Initial learning rate.
        batch_size: Examples per optimizer step.
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"``.
        momentum: SGD momentum; ignored by Adam and AdamW.
        weight_decay: L2 weight decay (an explicit penalty ``c·Σw²`` equals ``2c`` here).
        dropout: Dropout probability, for models that have dropout; ``None`` otherwise.
        scheduler: ``"plateau"`` (ReduceLROnPlateau on validation loss, what the tuner
            searches), ``"step"`` (StepLR, for seeds that used it) or ``"none"``.
        plateau_factor: ReduceLROnPlateau ``factor``: the lr is multiplied by it.
        plateau_patience: Epochs without improvement before the lr is cut.
        plateau_threshold: Relative improvement that counts as one.
        plateau_cooldown: Epochs to wait after a cut.
        plateau_min_lr: The lr never goes below this.
        step_size: StepLR: epochs between cuts.
        step_gamma: StepLR: the lr is multiplied by it.
        epochs: The epoch budget the settings were picked for (shown, not enforced: every
            trial of a study trains for the study's ``--epochs``).
        extra: Hyperparameters only this plugin understands (a width, a depth).
    """

    lr: float
    batch_size: int
    optimizer: OptimizerName = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    dropout: float | None = None
    scheduler: SchedulerName = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    plateau_threshold: float = 1e-3
    plateau_cooldown: int = 0
    plateau_min_lr: float = 0.0
    step_size: int = 5
    step_gamma: float = 0.5
    epochs: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A flat dict: the named fields, then ``extra``'s entries."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        extra = values.pop("extra")
        return {**values, **dict(extra)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Hyperparameters:
        """Inverse of :meth:`as_dict`: names that are not fields go to ``extra``."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names}
        return cls(**known, extra=extra)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first impossible value."""
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be {_either(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be {_either(SCHEDULERS)}, got {self.scheduler!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"plateau_factor must be in (0, 1), got {self.plateau_factor}")


def _either(names: tuple[str, ...]) -> str:
    """``sgd, adam or adamw``."""
    return f"{', '.join(names[:-1])} or {names[-1]}"


# ---------------------------------------------------------------------------------------------
# The two kinds of plugin.


@dataclass(frozen=True)
class Architecture:
    """An architecture plugin.

    Args:
        build: ``build(shape, hp) -> nn.Module``. Builds a fresh, randomly initialised model
            for ``shape`` (first layer takes ``shape.channels``, last layer has
            ``shape.num_classes`` outputs). Reads ``hp.dropout`` wherever the model has
            dropout and ``hp.extra`` for its own hyperparameters. Raises
            :class:`PairRefused` with the reason when it cannot take the shape.
        description: One line for ``tuner plugins``.
        reference: The hand-picked settings this architecture was published with: every new
            study runs them first as trial 0, the baseline the tuner must beat.
        reference_source: Where the reference settings come from (a paper, a post).
        input_size: ``(height, width)`` the model wants; data are resized to it on the
            device, in batches. ``None`` takes the dataset's own size.
        has_dropout: Whether ``build`` reads ``hp.dropout`` (dropout is then searched).
        search_space: Narrows the default search space (same name, new range) or adds
            hyperparameters only this model understands (they reach ``build`` through
            ``hp.extra``).
        contract_version: The :data:`CONTRACT_VERSION` the plugin was written for.
    """

    build: Callable[[ImageShape, Hyperparameters], nn.Module]
    description: str
    reference: Hyperparameters | None = None
    reference_source: str = ""
    input_size: tuple[int, int] | None = None
    has_dropout: bool = False
    search_space: Mapping[str, Param] = field(default_factory=dict)
    contract_version: int = CONTRACT_VERSION


@dataclass(frozen=True)
class DataRequest:
    """What the core passes to :attr:`Dataset.load`.

    Args:
        data_dir: Folder to read the files from (and download them into).
        download: Whether a download may be tried when files are missing.
    """

    data_dir: Path
    download: bool = True


@dataclass(frozen=True)
class Splits:
    """A dataset's images and labels, as tensors on the CPU.

    Args:
        train_images: ``(N, C, H, W)``, ``uint8`` in 0..255 or floating point in [0, 1].
        train_labels: ``(N,)`` ``int64`` class indices in ``0..num_classes-1``.
        test_images: Like ``train_images``; touched once, for the final report.
        test_labels: Like ``train_labels``.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


@dataclass(frozen=True)
class Dataset:
    """A dataset plugin.

    Args:
        load: ``load(request) -> Splits``. Reads the files under ``request.data_dir``,
            downloading first when they are missing and ``request.download`` allows; raises
            :class:`tuner.errors.DataMissing` naming the path it looked at and the fix.
            Called once per process; the core caches and preprocesses the result.
        description: One line for ``tuner plugins``.
        channels: Image channels.
        image_size: ``(height, width)`` of the stored images.
        class_names: One name per class, in label order.
        mean: Per-channel mean used for normalisation (images scaled to [0, 1] first).
        std: Per-channel standard deviation used for normalisation.
        contract_version: The :data:`CONTRACT_VERSION` the plugin was written for.
    """

    load: Callable[[DataRequest], Splits]
    description: str
    channels: int
    image_size: tuple[int, int]
    class_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    contract_version: int = CONTRACT_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.class_names)
