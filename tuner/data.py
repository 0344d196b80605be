"""The data cache: load a dataset once per process, preprocess once, split, keep on the device.

A trial never touches files or per-sample transforms: it gets :class:`PreparedData`, whose
tensors are normalised, already on the training device, and sliced by index into batches.
Resizing to an architecture's ``input_size`` happens on the device, one batch at a time
(an MNIST training set at 224×224 in float32 would be 12 GB; at 28×28 it is 188 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tuner import __version__
from tuner.contract import Architecture, DataRequest, Dataset, ImageShape, Splits
from tuner.errors import PluginError, UsageError

DEFAULT_VAL_FRACTION = 0.1


def default_data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$TUNER_DATA_DIR``, else the per-user cache directory."""
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env := os.environ.get("TUNER_DATA_DIR"):
        return Path(env).expanduser().absolute()
    cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_root) / "tuner" / "data"


def downloads_allowed() -> bool:
    """Downloads are tried unless ``TUNER_OFFLINE`` is set (to anything but 0/false)."""
    return os.environ.get("TUNER_OFFLINE", "").lower() in ("", "0", "false", "no")


_SPLITS_CACHE: dict[tuple[str, Path], Splits] = {}
#: A load slower than this is kept as a tensor file (reading it back takes ~50 ms for MNIST).
CACHE_AFTER_S = 0.2
_MAX_FINGERPRINT_FILES = 10_000


def load_splits(name: str, dataset: Dataset, data_dir: Path, distribution: str = "?") -> Splits:
    """Load ``dataset`` once per process and check it against its declaration. A load that
    takes long is kept in the user's cache folder as a tensor file, used again while the files
    under ``data_dir`` (names, sizes, modification times) and the plugin's version are the same."""
    key = (name, data_dir.resolve())
    if key not in _SPLITS_CACHE:
        cached = _cache_file(name, distribution, data_dir)
        splits = _read_cache(cached) if cached is not None else None
        if splits is None:
            started = time.perf_counter()
            splits = dataset.load(DataRequest(data_dir=data_dir, download=downloads_allowed()))
            problems = splits_problems(dataset, splits)
            if problems:
                raise PluginError("dataset", name, distribution, "; ".join(problems))
            if cached is not None and time.perf_counter() - started >= CACHE_AFTER_S:
                _write_cache(cached, splits)
        _SPLITS_CACHE[key] = splits
    return _SPLITS_CACHE[key]


def splits_cache_folder() -> Path:
    cache_root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_root) / "tuner" / "splits"


def _cache_file(name: str, distribution: str, data_dir: Path) -> Path | None:
    """Where ``name``'s tensors from ``data_dir`` are kept; None when the folder cannot be
    fingerprinted (missing, or too many files to list cheaply)."""
    root = data_dir.resolve()
    if not root.is_dir():
        return None
    try:
        version = importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        version = "?"
    digest = hashlib.sha256(f"{name}\0{distribution}\0{version}\0{__version__}\0{root}".encode())
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in sorted(files):
            count += 1
            if count > _MAX_FINGERPRINT_FILES:
                return None
            path = Path(folder, file)
            try:
                stat = path.stat()
            except OSError:
                continue
            digest.update(f"{path.relative_to(root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return splits_cache_folder() / f"{name}-{digest.hexdigest()[:24]}.pt"


def _read_cache(path: Path) -> Splits | None:
    try:
        parts = torch.load(path, weights_only=True)  # tensors only: nothing in the file can run
        return Splits(parts["train_images"], parts["train_labels"], parts["test_images"], parts["test_labels"])
    except Exception:  # absent, damaged, or from another format: load from the source again
        return None


def _write_cache(path: Path, splits: Splits) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            torch.save({"train_images": splits.train_images, "train_labels": splits.train_labels,
                        "test_images": splits.test_images, "test_labels": splits.test_labels}, tmp)
        os.replace(tmp.name, path)  # whole or not at all: two processes may write it at once
    except OSError:  # a read-only or full cache folder: the next run loads from the source again
        with contextlib.suppress(OSError, UnboundLocalError):
            os.unlink(tmp.name)


def splits_problems(dataset: Dataset, splits: Splits) -> list[str]:
    """What is wrong with ``splits`` given what ``dataset`` declares (empty when nothing)."""
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
        splits: The dataset's tensors (from :func:`load_splits`).
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
