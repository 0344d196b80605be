"""A study's tensors: normalised once, split into train / validation / test with the study's seed,
and put on the device.

A trial never touches files or per-sample transforms: it gets :class:`PreparedData`, whose
tensors are normalised, already on the training device, and sliced by index into batches.
Resizing to an architecture's ``input_size`` happens on the device, one batch at a time
(an MNIST training set at 224×224 in float32 would be 12 GB; at 28×28 it is 188 MB).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tuner.contract import Architecture, Dataset, ImageShape, Splits
from tuner.data.loading import load_splits
from tuner.data.split import DEFAULT_VAL_FRACTION, DataSettings
from tuner.errors import UsageError
from tuner.plugins.pair import Pair


def normalize(images: torch.Tensor, dataset: Dataset) -> torch.Tensor:
    """uint8 0..255 or float 0..1 -> float32 standardised per channel. (N, C, H, W)."""
    # Always a new tensor: the cached splits must never be normalised in place.
    x = images.float().div_(255) if images.dtype == torch.uint8 else images.to(torch.float32, copy=True)
    mean = torch.tensor(dataset.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(dataset.std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size), bilinear with antialiasing (torchvision's Resize)."""
    return F.interpolate(x, size=size, mode="bilinear", antialias=True)


@dataclass
class PreparedData:
    """Tensors a study trains on, normalised and on ``device``.

    ``train``/``val`` come from the dataset's training split (the validation part is a seeded
    random ``val_fraction`` of it); ``test`` is the dataset's test split, used once per study
    for the final report. ``input_size`` is the size batches are resized to, or ``None``.
    """

    train_x: torch.Tensor  # (N, C, H, W) float32
    train_y: torch.Tensor  # (N,) int64
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    shape: ImageShape  # what the model sees (after the resize)
    input_size: tuple[int, int] | None
    channels_last: bool = False  # CUDA: the layout the tensor cores want for convolutions

    def fit(self, x: torch.Tensor) -> torch.Tensor:
        """One batch as the model takes it: resized to its input size, in its memory layout."""
        if self.input_size is not None:
            x = resize(x, self.input_size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def fit_shape(arch: Architecture, shape: ImageShape) -> ImageShape:
    """``shape`` as ``arch`` sees it: resized to its ``input_size`` when it declares one."""
    if arch.input_size is None:
        return shape
    return ImageShape(shape.channels, *arch.input_size, shape.num_classes)


def model_shape(arch: Architecture, dataset: Dataset) -> ImageShape:
    return fit_shape(arch, ImageShape(dataset.channels, *dataset.image_size, dataset.num_classes))


def prepare(
    splits: Splits,
    dataset: Dataset,
    arch: Architecture,
    *,
    device: torch.device,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    split_seed: int = 0,
    max_train: int | None = None,
    max_val: int | None = None,
) -> PreparedData:
    """Split, normalise and move to ``device``, once.

    Args:
        splits: The dataset's tensors (from :func:`tuner.data.loading.load_splits`).
        dataset: Its declaration (normalisation, size).
        arch: The architecture (its ``input_size``).
        device: Where trials run.
        val_fraction: Share of the training split held out for validation.
        split_seed: Seed of the train/validation permutation; a study keeps it fixed so
            that every trial, resumed or not, is scored on the same examples.
        max_train: Cap on training examples (after the validation part is carved out).
        max_val: Cap on validation examples (``--max-train`` keeps the split's proportion).
    """
    if not 0 < val_fraction < 1:
        raise UsageError(f"validation fraction must be in (0, 1), got {val_fraction}")
    if max_train is not None and max_train < 1:
        raise UsageError(f"--max-train must be at least 1, got {max_train}")
    n = len(splits.train_labels)
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 2:
        raise UsageError(f"the training split has {n} examples: too few to hold out validation")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if max_train is not None:
        train_idx = train_idx[:max_train]
    if max_val is not None:
        val_idx = val_idx[:max_val]
    images = normalize(splits.train_images, dataset)
    input_size = arch.input_size if arch.input_size != dataset.image_size else None
    return PreparedData(
        train_x=images[train_idx].to(device),
        train_y=splits.train_labels[train_idx].to(device),
        val_x=images[val_idx].to(device),
        val_y=splits.train_labels[val_idx].to(device),
        test_x=normalize(splits.test_images, dataset).to(device),
        test_y=splits.test_labels.to(device),
        shape=model_shape(arch, dataset),
        input_size=input_size,
        channels_last=device.type == "cuda",
    )


def load_data(pair: Pair, data_dir: Path, device: torch.device,
              settings: DataSettings | Mapping[str, Any]) -> PreparedData:
    """The study's data, cut by ``settings`` (or the provenance or recipe that holds them)."""
    cut = settings if isinstance(settings, DataSettings) else DataSettings.of(settings)
    splits = load_splits(pair.dataset_name, pair.dataset, data_dir, pair.dataset_dist)
    return prepare(
        splits, pair.dataset, pair.arch, device=device, val_fraction=cut.val_fraction,
        split_seed=cut.seed, max_train=cut.max_train, max_val=cut.max_val,
    )
