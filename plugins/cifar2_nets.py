"""Seed 004's four small tanh CNNs for CIFAR-2 (airplane vs bird).

All share one shape: conv 3×3 (pad 1) → tanh → max-pool 2 → conv 3×3 (pad 1) → tanh →
max-pool 2 → linear → tanh → linear. ``width`` is the first conv's channel count (the
post's ``n_chans1``); the second has half as many.
"""

from __future__ import annotations

import torch
from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape, IntRange

from ._shapes import dropout_of, flat_features


class TanhConvNet(nn.Module):
    """The seed-004 family.

    Args:
        shape: Input and class count.
        width: Channels of the first conv (16 for Net, 32 for the others).
        dropout: ``Dropout2d`` probability after each conv block (NetDropout), or ``None``.
        batchnorm: ``BatchNorm2d`` after each conv (NetBatchNorm).
    """

    def __init__(self, shape: ImageShape, width: int, dropout: float | None = None,
                 batchnorm: bool = False) -> None:
        super().__init__()
        half = max(1, width // 2)

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers += [nn.Tanh(), nn.MaxPool2d(2)]
            if dropout is not None:
                layers.append(nn.Dropout2d(dropout))
            return layers

        self.features = nn.Sequential(*block(shape.channels, width), *block(width, half), nn.Flatten())
        flat = flat_features(self.features, shape, "this net needs images of at least 4×4")
        self.classifier = nn.Sequential(  # 8·8·8 = 512 for Net at 32×32
            nn.Linear(flat, 32), nn.Tanh(), nn.Linear(32, shape.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _width(hp: Hyperparameters, default: int) -> int:
    return int(hp.extra.get("width", default))


def _build_net(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    return TanhConvNet(shape, width=16)


def _build_netwidth(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    """NetWidth. The post's forward never called ``conv2``; this builds the intended net."""
    return TanhConvNet(shape, width=_width(hp, 32))


def _build_netdropout(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    """NetDropout. The post's forward never called ``conv2``; this builds the intended net."""
    return TanhConvNet(shape, width=_width(hp, 32), dropout=dropout_of(hp.dropout, 0.4))


def _build_netbatchnorm(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    return TanhConvNet(shape, width=_width(hp, 32), batchnorm=True)


# Plain SGD (no momentum), lr 1e-2, batch 64, 100 epochs.
_SEED_004 = dict(lr=1e-2, batch_size=64, optimizer="sgd", momentum=0.0, scheduler="none", epochs=100)
_SOURCE = "seed 004: SGD lr 1e-2 (no momentum), batch 64, 100 epochs"
_WIDTH_SPACE = {"width": IntRange(8, 64, step=8)}

net = Architecture(
    build=_build_net,
    description="Net: conv 16 → conv 8 → fc 32, tanh (seed 004)",
    reference=Hyperparameters(**_SEED_004),
    reference_source=_SOURCE,
)

netwidth = Architecture(
    build=_build_netwidth,
    description="NetWidth: Net with a searchable width (32 → 16 in the post) (seed 004)",
    reference=Hyperparameters(**_SEED_004, extra={"width": 32}),
    reference_source=_SOURCE,
    search_space=_WIDTH_SPACE,
)

netdropout = Architecture(
    build=_build_netdropout,
    description="NetDropout: NetWidth with Dropout2d after each conv block (seed 004)",
    reference=Hyperparameters(**_SEED_004, dropout=0.4, extra={"width": 32}),
    reference_source=_SOURCE,
    has_dropout=True,
    search_space=_WIDTH_SPACE,
)

netbatchnorm = Architecture(
    build=_build_netbatchnorm,
    description="NetBatchNorm: NetWidth with BatchNorm2d after each conv (seed 004)",
    # The post added 0.001·Σw² to the loss: its gradient is weight decay 0.002.
    reference=Hyperparameters(**_SEED_004, weight_decay=0.002, extra={"width": 32}),
    reference_source=_SOURCE + ", L2 0.001·Σw² (weight decay 0.002)",
    search_space=_WIDTH_SPACE,
)
