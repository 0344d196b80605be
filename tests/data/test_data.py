"""Dataset loaders on real files (MNIST) and files in the real format (CIFAR), and the data cache."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import torch
from helpers import write_cifar10

from tuner.contract import DataRequest
from tuner.data import default_data_dir, load_splits, prepare
from tuner.errors import DataMissing
from tuner.plugins.registry import registry


def test_real_mnist_through_the_real_loader(mnist_dir):
    mnist = registry().dataset("mnist")
    splits = mnist.load(DataRequest(mnist_dir, download=False))
    assert splits.train_images.shape == (60000, 1, 28, 28) and splits.train_images.dtype == torch.uint8
    assert splits.test_images.shape == (10000, 1, 28, 28)
    assert torch.bincount(splits.train_labels).tolist()[:2] == [5923, 6742]  # MNIST's known counts
    sums = (mnist_dir / "MNIST" / "SHA256SUMS.uncompressed").read_text().split()
    expected = dict(zip(sums[1::2], sums[0::2], strict=True))
    raw = mnist_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    assert hashlib.sha256(gzip.decompress(raw.read_bytes())).hexdigest() == expected["t10k-labels-idx1-ubyte"]
    # Normalised with the declared statistics, MNIST is roughly standard.
    x = splits.train_images[:5000].float() / 255
    assert abs(x.mean().item() - mnist.mean[0]) < 0.01 and abs(x.std().item() - mnist.std[0]) < 0.01


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_and_cifar2_from_files_in_the_official_format(tmp_path, archive):
    write_cifar10(tmp_path, per_batch=20, archive=archive)
    request = DataRequest(tmp_path, download=False)
    full = registry().dataset("cifar10").load(request)
    assert full.train_images.shape == (100, 3, 32, 32) and full.test_images.shape == (20, 3, 32, 32)
    assert full.train_labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    two = registry().dataset("cifar2").load(request)
    assert set(two.train_labels.tolist()) == {0, 1}
    assert len(two.train_labels) == 20  # 2 of every 10 images: airplanes and birds
    # airplane images keep label 0, birds (CIFAR label 2) become 1, pixels unchanged
    assert torch.equal(two.train_images[1], full.train_images[2]) and two.train_labels[1] == 1


@pytest.mark.reliability
def test_a_damaged_cifar_archive_is_reported(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataMissing, match="not a readable CIFAR-10 archive"):
        registry().dataset("cifar10").load(DataRequest(tmp_path, download=False))


def test_digits_are_embedded_and_framed_like_mnist():
    digits = registry().dataset("digits")
    splits = digits.load(DataRequest(Path("/nonexistent"), download=False))
    assert splits.train_images.shape[1:] == (1, 28, 28)
    assert len(splits.train_labels) + len(splits.test_labels) == 1797
    assert splits.train_images[:, :, :4].abs().max() == 0  # a 4-pixel empty border, as MNIST


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNER_DATA_DIR", str(tmp_path / "env"))
    assert default_data_dir("cli") == Path("cli").absolute()
    assert default_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("TUNER_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir(None) == tmp_path / "cache" / "tuner" / "data"


def test_validation_is_carved_from_train_seeded_and_disjoint(tmp_path):
    digits = registry().dataset("digits")
    lenet = registry().architecture("lenet")
    splits = load_splits("digits", digits, tmp_path)
    a = prepare(splits, digits, lenet, device=torch.device("cpu"), split_seed=3)
    b = prepare(splits, digits, lenet, device=torch.device("cpu"), split_seed=3)
    c = prepare(splits, digits, lenet, device=torch.device("cpu"), split_seed=4)
    n = len(splits.train_labels)
    assert len(a.val_y) == round(n * 0.1) and len(a.train_y) + len(a.val_y) == n
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    assert len(a.test_y) == len(splits.test_labels)  # the test split is kept whole and apart
    capped = prepare(splits, digits, lenet, device=torch.device("cpu"), max_train=100)
    assert len(capped.train_y) == 100 and len(capped.val_y) == len(a.val_y)


def test_data_is_loaded_once_per_process(tmp_path, monkeypatch):
    digits = registry().dataset("digits")
    calls = []
    original = digits.load
    from tuner.data import loading as data_module

    monkeypatch.setattr(data_module, "_SPLITS_CACHE", {})
    wrapped = type(digits)(**{**digits.__dict__, "load": lambda r: calls.append(1) or original(r)})
    load_splits("digits", wrapped, tmp_path)
    load_splits("digits", wrapped, tmp_path)
    assert calls == [1]


class _RunsCode:
    """Unpickling this calls os.system: what a crafted 'data_batch_1' can do to pickle.loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.reliability
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_hostile_cifar_batch_runs_nothing_and_is_one_line(tmp_path, protocol):
    import pickle

    from helpers import one_error_line, run_tuner

    write_cifar10(tmp_path / "data", per_batch=20)
    marker = tmp_path / "pwned"
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}, protocol=protocol))
    proc = run_tuner("optimize", "--plugin", "net-cifar2", "--trials", "1", cwd=tmp_path)
    line = one_error_line(proc)
    assert "data_batch_3 is not a CIFAR-10 batch" in line and "posix.system" in line and "nothing in it was run" in line
    assert not marker.exists()
    assert not (tmp_path / "studies").exists()


def test_a_python2_era_cifar_batch_still_loads(tmp_path):
    """The real files were pickled by Python 2 numpy: protocol 2, numpy.core.multiarray."""
    import pickle

    write_cifar10(tmp_path, per_batch=20)
    folder = tmp_path / "cifar-10-batches-py"
    for path in folder.iterdir():
        batch = pickle.loads(path.read_bytes())
        blob = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path.write_bytes(blob)
    assert b"numpy.core.multiarray" in (folder / "test_batch").read_bytes()
    splits = registry().dataset("cifar10").load(DataRequest(tmp_path, download=False))
    assert splits.train_images.shape == (100, 3, 32, 32)


def test_a_slow_load_is_kept_as_tensors_and_loaded_again_only_when_the_files_change(tmp_path, monkeypatch):
    import time as clock

    from tuner.contract import Dataset, Splits
    from tuner.data import loading as data_module

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "images.bin").write_bytes(b"\x01" * 100)
    calls = []

    def load(request):
        calls.append(request.data_dir)
        clock.sleep(data_module.CACHE_AFTER_S + 0.05)  # a slow format, as MNIST's gzip files are
        images = torch.full((4, 1, 8, 8), calls.__len__(), dtype=torch.uint8)
        return Splits(images, torch.arange(4) % 2, images[:2], torch.arange(2))

    slow = Dataset(load=load, description="slow", channels=1, image_size=(8, 8), class_names=("a", "b"),
                   mean=(0.5,), std=(0.5,))

    def fresh_process_load():
        data_module._SPLITS_CACHE.clear()  # as a new process starts
        return data_module.load_splits("slow", slow, folder)

    first = fresh_process_load()
    assert len(calls) == 1 and list((tmp_path / "cache" / "tuner" / "splits").glob("slow-*.pt"))
    again = fresh_process_load()
    assert len(calls) == 1 and torch.equal(again.train_images, first.train_images)  # from the cache
    (folder / "images.bin").write_bytes(b"\x02" * 101)  # the source changed
    changed = fresh_process_load()
    assert len(calls) == 2 and changed.train_images[0, 0, 0, 0] == 2
    for cached in (tmp_path / "cache" / "tuner" / "splits").glob("slow-*.pt"):
        cached.write_bytes(b"not a tensor file")  # damaged: loaded from the source, no error
    assert fresh_process_load().train_images[0, 0, 0, 0] == 3 and len(calls) == 3


def test_data_settings_are_stored_as_studies_and_recipes_always_stored_them():
    """One shape for a study's data settings: the keys and order every provenance and recipe
    holds, the validation cap a new study takes, and the defaults of one that stored none."""
    from tuner.data import DataSettings

    assert DataSettings.capped(3, 3000).as_dict() == {"seed": 3, "val_fraction": 0.1, "max_train": 3000, "max_val": 333}
    assert list(DataSettings().as_dict()) == ["seed", "val_fraction", "max_train", "max_val"]
    assert DataSettings.of({"seed": 5, "epochs": 4}) == DataSettings(5)
