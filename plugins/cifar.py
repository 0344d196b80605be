"""CIFAR-10 (50,000 + 10,000 colour 32×32 images) and seed 004's CIFAR-2 subset."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from tuner.contract import DataRequest, Dataset, Splits
from tuner.errors import DataMissing

from ._files import try_download

ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _batches_from_folder(folder: Path) -> dict[str, bytes] | None:
    names = [*TRAIN_BATCHES, TEST_BATCH]
    if not all((folder / n).is_file() for n in names):
        return None
    return {n: (folder / n).read_bytes() for n in names}


def _batches_from_archive(archive: Path) -> dict[str, bytes] | None:
    if not archive.is_file():
        return None
    wanted = {f"{FOLDER}/{n}": n for n in [*TRAIN_BATCHES, TEST_BATCH]}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name in wanted and member.isfile():
                    out[wanted[member.name]] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataMissing(f"{archive} is not a readable CIFAR-10 archive ({e}); download it again") from None
    if len(out) != len(wanted):
        raise DataMissing(f"{archive} lacks some CIFAR-10 batches; download it again")
    return out


# What a real CIFAR-10 python batch refers to (numpy arrays; Python 3 pickles also encode bytes
# with _codecs). Nothing else is ever looked up, so a crafted batch cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class HostileBatch(Exception):
    """A batch pickle names something a CIFAR-10 batch never holds."""


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise HostileBatch(f"{module}.{name}")
        return super().find_class(module, name)


def _decode(blob: bytes, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        # The official format is a Python pickle: read with an unpickler that admits only arrays.
        batch = _BatchUnpickler(io.BytesIO(blob), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except HostileBatch as e:
        raise DataMissing(f"CIFAR-10 batch {name} is not a CIFAR-10 batch: it refers to {e}, which a real one "
                          "never does (nothing in it was run); delete it and download the data set again") from None
    except Exception as e:  # any decoding failure means a damaged file
        raise DataMissing(f"CIFAR-10 batch {name} is damaged ({type(e).__name__}); download it again") from None
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def load_cifar10(request: DataRequest) -> Splits:
    root = request.data_dir
    fix = (f"Put {ARCHIVE} (or its extracted {FOLDER}/ folder) in {root}, point --data-dir or "
           "TUNER_DATA_DIR at the folder that holds it, or use the embedded dataset: "
           "--plugin <architecture>-digits")
    blobs = _batches_from_folder(root / FOLDER) or _batches_from_archive(root / ARCHIVE)
    if blobs is None:
        if not request.download:
            raise DataMissing(f"CIFAR-10 files missing from {root} (downloads are off). {fix}")
        from torchvision.datasets import CIFAR10

        try_download(lambda: CIFAR10(str(root), train=True, download=True), "CIFAR-10", root, fix)
        blobs = _batches_from_folder(root / FOLDER) or _batches_from_archive(root / ARCHIVE)
        if blobs is None:
            raise DataMissing(f"CIFAR-10 files are still missing from {root} after the download. {fix}")
    train = [_decode(blobs[n], n) for n in TRAIN_BATCHES]
    test_x, test_y = _decode(blobs[TEST_BATCH], TEST_BATCH)
    return Splits(
        train_images=torch.cat([x for x, _ in train]),  # (50000, 3, 32, 32) uint8
        train_labels=torch.cat([y for _, y in train]),
        test_images=test_x,
        test_labels=test_y,
    )


def _keep(images: torch.Tensor, labels: torch.Tensor, classes: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.isin(labels, torch.tensor(classes))
    relabel = torch.full((10,), -1, dtype=torch.int64)
    relabel[list(classes)] = torch.arange(len(classes))
    return images[mask], relabel[labels[mask]]


def load_cifar2(request: DataRequest) -> Splits:
    """CIFAR-10's airplanes (label 0) and birds (label 2), relabelled 0 and 1 (seed 004)."""
    full = load_cifar10(request)
    train_x, train_y = _keep(full.train_images, full.train_labels, (0, 2))
    test_x, test_y = _keep(full.test_images, full.test_labels, (0, 2))
    return Splits(train_x, train_y, test_x, test_y)


_MEAN = (0.4914, 0.4822, 0.4465)
_STD = (0.2470, 0.2435, 0.2616)

cifar10 = Dataset(
    load=load_cifar10,
    description="CIFAR-10, 3×32×32, 10 classes (torchvision download or local files)",
    channels=3, image_size=(32, 32), class_names=CLASSES, mean=_MEAN, std=_STD,
)

cifar2 = Dataset(
    load=load_cifar2,
    description="CIFAR-2: CIFAR-10 airplane vs bird, relabelled 0/1 (seed 004)",
    channels=3, image_size=(32, 32), class_names=("airplane", "bird"), mean=_MEAN, std=_STD,
)
