"""A third party's plugins: a tiny CNN with its own width hyperparameter, and 8×8 digits."""

import torch
from torch import nn

from tuner.contract import (
    Architecture,
    DataRequest,
    Dataset,
    Hyperparameters,
    ImageShape,
    IntRange,
    PairRefused,
    Splits,
)


def build_tinynet(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    if min(shape.height, shape.width) < 4:
        raise PairRefused(f"tinynet needs images of at least 4×4, got {shape.height}×{shape.width}")
    hidden = int(hp.extra.get("hidden", 16))
    return nn.Sequential(
        nn.Conv2d(shape.channels, hidden, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4),
        nn.Flatten(), nn.Dropout(0.1 if hp.dropout is None else hp.dropout),
        nn.Linear(hidden * 16, shape.num_classes),
    )


tinynet = Architecture(
    build=build_tinynet,
    description="Tiny CNN from a third-party package",
    reference=Hyperparameters(lr=3e-3, batch_size=64, optimizer="adam", dropout=0.1, extra={"hidden": 16}),
    reference_source="the demo package's author",
    has_dropout=True,
    search_space={"hidden": IntRange(8, 32, step=8)},
)


def load_digits8(request: DataRequest) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (torch.from_numpy(bunch.images) * 255 / 16).to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(bunch.target).long()
    return Splits(images[:1500], labels[:1500], images[1500:], labels[1500:])


digits8 = Dataset(
    load=load_digits8,
    description="scikit-learn digits at their native 8×8",
    channels=1,
    image_size=(8, 8),
    class_names=tuple("0123456789"),
    mean=(0.30,),
    std=(0.37,),
)
