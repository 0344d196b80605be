"""An architecture with a slow training step made of real layers: 24 linear layers 2,048 wide,
a batch of 1,024. On a CPU one step takes seconds, most of them inside ``loss.backward()``: one
C++ call, as in any big model. With ``TUNER_SLOW_MARK`` set, each training forward appends a line
to that file, so a test can send its signal inside a step rather than after a guessed delay."""

import os

import torch
from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape

WIDTH, DEPTH = 2048, 24


class _Marked(nn.Sequential):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and (mark := os.environ.get("TUNER_SLOW_MARK")):
            with open(mark, "a") as f:
                f.write("step\n")
        return super().forward(x)


def build_slowstep(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(shape.channels * shape.height * shape.width, WIDTH)]
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    return _Marked(*layers, nn.Linear(WIDTH, shape.num_classes))


slowstep = Architecture(
    build=build_slowstep,
    description="A deep wide MLP whose step takes seconds on a CPU",
    reference=Hyperparameters(lr=1e-3, batch_size=1024, optimizer="sgd"),
    reference_source="tuner's tests",
)
