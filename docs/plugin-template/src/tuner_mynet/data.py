"""`mydata`: images and labels from two .npz files under ``<data dir>/mydata/``.

Each file holds ``images`` (N, H, W) or (N, C, H, W) uint8 and ``labels`` (N,) integers.
Replace the loader with your own format; keep the declaration honest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tuner.contract import DataRequest, Dataset, Splits
from tuner.errors import DataMissing


def _read(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(path) as f:
        images, labels = f["images"], f["labels"]
    if images.ndim == 3:
        images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
    return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))


def load_mydata(request: DataRequest) -> Splits:
    folder = request.data_dir / "mydata"
    paths = [folder / "train.npz", folder / "test.npz"]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        # One clear line: what is missing, where it was looked for, how to fix it.
        raise DataMissing(f"{', '.join(missing)} missing from {folder}; put the files there or point "
                          "--data-dir at the folder that holds mydata/")
    (train_x, train_y), (test_x, test_y) = (_read(p) for p in paths)
    return Splits(train_x, train_y, test_x, test_y)


def write_example_files(data_dir: str | Path) -> Path:
    """Write example files (scikit-learn's digits at 16×16) to try the template with."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.kron(bunch.images, np.ones((2, 2))) * 255 / 16  # 8×8 -> 16×16
    folder = Path(data_dir) / "mydata"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "train.npz", images=images[:1500].astype(np.uint8), labels=bunch.target[:1500])
    np.savez(folder / "test.npz", images=images[1500:].astype(np.uint8), labels=bunch.target[1500:])
    return folder


mydata = Dataset(
    load=load_mydata,
    description="Grey 16×16 images in two .npz files",
    channels=1,
    image_size=(16, 16),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.30,),  # per channel, of images scaled to [0, 1]
    std=(0.37,),
)
