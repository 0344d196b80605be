"""The two multilayer perceptrons of seeds 002 and 003."""

from __future__ import annotations

import itertools

from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape

#: Seed 002's settings, shared by its MLP, CNNNet and LeNet.
SEED_002_REFERENCE = Hyperparameters(
    lr=0.01, batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=0.0,
    scheduler="step", step_size=5, step_gamma=0.5, epochs=20,
)
SEED_002_SOURCE = "seed 002: SGD lr 0.01 momentum 0.9, batch 64, StepLR(5, 0.5), 20 epochs"


def _build_mlp(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    """784-300-100-10 with BatchNorm1d after each hidden layer (seed 002).

    The post put a softmax before CrossEntropyLoss; that double softmax is left out.
    """
    inputs = shape.channels * shape.height * shape.width
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(inputs, 300), nn.BatchNorm1d(300), nn.ReLU(inplace=True),
        nn.Linear(300, 100), nn.BatchNorm1d(100), nn.ReLU(inplace=True),
        nn.Linear(100, shape.num_classes),
    )


def _build_sigmoid_mlp(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    """784-128-256-128-64-10 with sigmoid activations (seed 003)."""
    widths = [shape.channels * shape.height * shape.width, 128, 256, 128, 64]
    layers: list[nn.Module] = [nn.Flatten()]
    for n_in, n_out in itertools.pairwise(widths):
        layers += [nn.Linear(n_in, n_out), nn.Sigmoid()]
    layers.append(nn.Linear(widths[-1], shape.num_classes))
    return nn.Sequential(*layers)


mlp = Architecture(
    build=_build_mlp,
    description="MLP 300-100 with BatchNorm1d and ReLU (seed 002)",
    reference=SEED_002_REFERENCE,
    reference_source=SEED_002_SOURCE,
)

sigmoid_mlp = Architecture(
    build=_build_sigmoid_mlp,
    description="MLP 128-256-128-64 with sigmoid activations (seed 003)",
    reference=Hyperparameters(lr=0.0045, batch_size=64, optimizer="adam", scheduler="none", epochs=25),
    reference_source="seed 003: Adam lr 0.0045, batch 64, no scheduler, 25 epochs",
)
