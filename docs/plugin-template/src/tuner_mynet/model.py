"""`mynet`: a small CNN whose width and depth are hyperparameters the tuner searches."""

from __future__ import annotations

from torch import nn

from tuner.contract import Architecture, FloatRange, Hyperparameters, ImageShape, IntRange, PairRefused


def build_mynet(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    """``depth`` blocks of conv 3×3 → BatchNorm → ReLU → max-pool 2, then dropout and a linear layer.

    Built from the dataset's shape: the first conv takes ``shape.channels``, the last layer has
    ``shape.num_classes`` outputs. ``width`` and ``depth`` arrive through ``hp.extra``.
    """
    width = int(hp.extra.get("width", 32))
    depth = int(hp.extra.get("depth", 2))
    if min(shape.height, shape.width) < 2**depth:
        raise PairRefused(f"mynet with depth {depth} needs images of at least {2**depth}×{2**depth}")
    layers: list[nn.Module] = []
    channels = shape.channels
    for i in range(depth):
        out = width * 2**i
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True),
                   nn.MaxPool2d(2)]
        channels = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2 if hp.dropout is None else hp.dropout),
               nn.Linear(channels, shape.num_classes)]
    return nn.Sequential(*layers)


mynet = Architecture(
    build=build_mynet,
    description="A small CNN with searchable width and depth",
    # The settings you would have picked by hand: trial 0 of every study, the baseline to beat.
    reference=Hyperparameters(lr=1e-3, batch_size=64, optimizer="adam", dropout=0.2,
                              extra={"width": 32, "depth": 2}),
    reference_source="picked by hand",
    has_dropout=True,
    search_space={
        "lr": FloatRange(1e-4, 3e-2, log=True),  # narrows the default 1e-5..1e-1
        "dropout": FloatRange(0.0, 0.5),
        "width": IntRange(16, 64, step=16),  # new hyperparameters: reach build() via hp.extra
        "depth": IntRange(1, 3),
    },
)
