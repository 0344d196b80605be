"""An architecture with a slow training step made of real layers: 24 linear layers 2,048 wide,
a batch of 1,024. On a CPU one step takes seconds, most of them inside ``loss.backward()``: one
C++ call, as in any big model."""

from torch import nn

from tuner.contract import Architecture, Hyperparameters, ImageShape

WIDTH, DEPTH = 2048, 24


def build_slowstep(shape: ImageShape, hp: Hyperparameters) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(shape.channels * shape.height * shape.width, WIDTH)]
    for _ in range(DEPTH):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(WIDTH, shape.num_classes))


slowstep = Architecture(
    build=build_slowstep,
    description="A deep wide MLP whose step takes seconds on a CPU",
    reference=Hyperparameters(lr=1e-3, batch_size=1024, optimizer="sgd"),
    reference_source="tuner's tests",
)
