"""An MLP that skips its hidden layer while its input is dark: ``if x.mean() > 0.1`` reads a
tensor's value in Python, data-dependent control flow that ``torch.func.vmap`` refuses. It
trains alone as any module does; a study asked to fuse it falls back to one trial at a time."""

import torch
from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape


class Gated(nn.Module):
    def __init__(self, shape: ImageShape) -> None:
        super().__init__()
        inputs = shape.channels * shape.height * shape.width
        self.hidden = nn.Linear(inputs, inputs)
        self.out = nn.Linear(inputs, shape.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        if x.mean() > 0.1:
            x = torch.relu(self.hidden(x))
        return self.out(x)


def build_gated(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    return Gated(shape)


gated = Architecture(
    build=build_gated,
    description="An MLP with a data-dependent branch (cannot be fused)",
    reference=Hyperparameters(lr=0.05, batch_size=64, optimizer="sgd"),
    reference_source="tuner's tests",
)
