"""The two small CNNs of seed 002: CNNNet and LeNet."""

from __future__ import annotations

import torch
from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape

from ._shapes import flat_features
from .mlp import SEED_002_REFERENCE, SEED_002_SOURCE


class CNNNet(nn.Module):
    """conv 16@5 → pool → conv 30@5 → pool → linear. The post's linear layer had the wrong
    input width (30); here it is sized from the image."""

    def __init__(self, shape: ImageShape) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(shape.channels, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 30, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = flat_features(self.features, shape, "cnnnet needs images of at least 12×12")
        self.fc = nn.Linear(flat, shape.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class LeNet(nn.Module):
    """LeNet-5: conv 6@5 → pool → conv 16@5 → pool → 120 → 84 → classes (ReLU)."""

    def __init__(self, shape: ImageShape) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(shape.channels, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = flat_features(self.features, shape, "lenet needs images of at least 12×12")
        self.classifier = nn.Sequential(  # 16·5·5 = 400 at 32×32, 16·4·4 = 256 at 28×28
            nn.Linear(flat, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True),
            nn.Linear(84, shape.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _build_cnnnet(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    return CNNNet(shape)


def _build_lenet(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    return LeNet(shape)


cnnnet = Architecture(
    build=_build_cnnnet,
    description="CNNNet: conv 16@5, conv 30@5, one linear layer (seed 002)",
    reference=SEED_002_REFERENCE,
    reference_source=SEED_002_SOURCE,
)

lenet = Architecture(
    build=_build_lenet,
    description="LeNet-5: conv 6@5, conv 16@5, fc 120-84 (seed 002)",
    reference=SEED_002_REFERENCE,
    reference_source=SEED_002_SOURCE,
)
