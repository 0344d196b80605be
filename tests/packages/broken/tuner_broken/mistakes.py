"""One mistake per plugin."""

from types import SimpleNamespace

import torch
from torch import nn

from tuner.contract import Architecture, DataRequest, Dataset, Splits


def build_wrongwidth(shape, hp):
    return nn.Sequential(nn.Flatten(), nn.Linear(shape.channels * shape.height * shape.width, 7))


# Output width fixed at 7 instead of shape.num_classes.
wrongwidth = Architecture(build=build_wrongwidth, description="always 7 outputs")

# Written for a future contract.
futurenet = SimpleNamespace(contract_version=99, build=build_wrongwidth, description="from the future")

# Missing fields: an object that has only `build`.
halfnet = SimpleNamespace(build=build_wrongwidth)


def load_badlabels(request: DataRequest) -> Splits:
    x = torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
    y = torch.arange(20) % 12  # labels up to 11 for a 10-class dataset
    return Splits(x, y, x, y)


badlabels = Dataset(load=load_badlabels, description="labels out of range", channels=1, image_size=(8, 8),
                    class_names=tuple("0123456789"), mean=(0.5,), std=(0.5,))


class _OutOfMemoryAbove(nn.Module):
    """Raises CUDA's out-of-memory error for training batches over 100, as a GPU would."""

    def __init__(self, shape):
        super().__init__()
        self.fc = nn.Linear(shape.channels * shape.height * shape.width, shape.num_classes)

    def forward(self, x):
        if self.training and x.shape[0] > 100:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.fc(x.flatten(1))


oomnet = Architecture(build=lambda shape, hp: _OutOfMemoryAbove(shape), description="runs out of memory")


class _OutOfMemoryFrom256(nn.Module):
    """Out of memory at every training step, one image included, when its trial's batch size is
    256 or more: as on a GPU whose memory the trials' optimizer state or other trials take."""

    def __init__(self, shape, batch_size):
        super().__init__()
        self.fc = nn.Linear(shape.channels * shape.height * shape.width, shape.num_classes)
        self.crowded = batch_size >= 256

    def forward(self, x):
        if self.training and self.crowded:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.fc(x.flatten(1))


crowdnet = Architecture(build=lambda shape, hp: _OutOfMemoryFrom256(shape, hp.batch_size),
                        description="out of memory at batch size 256 and above")
