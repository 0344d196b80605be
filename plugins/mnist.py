"""MNIST: 60,000 training and 10,000 test 28×28 grey digits."""

from __future__ import annotations

from tuner.contract import DataRequest, Dataset, Splits
from tuner.errors import DataMissing

from ._files import find, read_idx, try_download

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _load(request: DataRequest) -> Splits:
    raw = request.data_dir / "MNIST" / "raw"
    fix = (f"Put the four official files ({', '.join(f + '.gz' for f in FILES.values())}) in "
           f"{raw}, point --data-dir or TUNER_DATA_DIR at a folder holding MNIST/raw/, or use the "
           "embedded dataset: --plugin <architecture>-digits")
    paths = {key: find(raw, name) for key, name in FILES.items()}
    if None in paths.values():
        if not request.download:
            missing = ", ".join(FILES[k] for k, p in paths.items() if p is None)
            raise DataMissing(f"MNIST files missing from {raw}: {missing} (downloads are off). {fix}")
        from torchvision.datasets import MNIST

        def fetch() -> None:
            for train in (True, False):
                MNIST(str(request.data_dir), train=train, download=True)

        try_download(fetch, "MNIST", raw, fix)
        paths = {key: find(raw, name) for key, name in FILES.items()}
        if None in paths.values():
            raise DataMissing(f"MNIST files are still missing from {raw} after the download. {fix}")
    tensors = {key: read_idx(path) for key, path in paths.items()}
    return Splits(
        train_images=tensors["train_images"].unsqueeze(1),  # (N, 1, 28, 28) uint8
        train_labels=tensors["train_labels"].long(),
        test_images=tensors["test_images"].unsqueeze(1),
        test_labels=tensors["test_labels"].long(),
    )


mnist = Dataset(
    load=_load,
    description="MNIST handwritten digits, 1×28×28, 10 classes (torchvision download or local files)",
    channels=1,
    image_size=(28, 28),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.1307,),
    std=(0.3081,),
)
