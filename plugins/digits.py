"""scikit-learn's 1,797 real handwritten digits, framed like MNIST: the embedded dataset.

Needs no download. Each 8×8 digit (values 0..16) is resized to 20×20 and centred in a 28×28
frame with a 4-pixel border, the way MNIST frames its digits, so every MNIST model runs on it.
There is no official test split: a fixed, seeded 20% is held out as the test set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tuner.contract import DataRequest, Dataset, Splits

TEST_FRACTION = 0.2


def _load(request: DataRequest) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().unsqueeze(1) / 16  # (1797, 1, 8, 8) in [0, 1]
    images = F.interpolate(images, size=(20, 20), mode="bilinear", antialias=True, align_corners=False)
    images = F.pad(images, (4, 4, 4, 4)).clamp_(0, 1)  # (1797, 1, 28, 28)
    labels = torch.from_numpy(bunch.target).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1797))
    n_test = round(len(labels) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    return Splits(images[train], labels[train], images[test], labels[test])


digits = Dataset(
    load=_load,
    description="scikit-learn's 1,797 handwritten digits as 1×28×28, 10 classes (embedded, no download)",
    channels=1,
    image_size=(28, 28),
    class_names=tuple(str(d) for d in range(10)),
    mean=(0.1556,),
    std=(0.2769,),
)
