"""Out of memory is not the end of a trial: a step is taken again as micro-batches that add up to
the trial's batch size, evaluation halves its batch, and only a model that cannot fit one image
fails, saying so. The real exception type (``torch.OutOfMemoryError``) is raised from inside the
model's forward pass when a batch is over a limit, as a GPU would."""

from __future__ import annotations

import weakref

import pytest
import torch
from torch import nn

from tuner.contract import Architecture, Hyperparameters
from tuner.training import DoesNotFit, evaluate, start_training

pytestmark = pytest.mark.reliability

HP = Hyperparameters(lr=0.05, batch_size=256, optimizer="sgd", momentum=0.9, weight_decay=1e-4, scheduler="none")
ACTIVATIONS: list[weakref.ref] = []


class _Limited(nn.Module):
    """A two-layer MLP that runs out of memory above ``train_limit`` images in training and
    ``eval_limit`` in evaluation, after its first layer has made its activations."""

    def __init__(self, inputs: int, classes: int, train_limit: int | None, eval_limit: int | None) -> None:
        super().__init__()
        self.hidden = nn.Linear(inputs, 64)
        self.out = nn.Linear(64, classes)
        self.train_limit, self.eval_limit = train_limit, eval_limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.hidden(x.flatten(1)))
        limit = self.train_limit if self.training else self.eval_limit
        if limit is not None and x.shape[0] > limit:
            ACTIVATIONS.append(weakref.ref(h))
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} images")
        return self.out(h)


def _arch(train_limit: int | None = None, eval_limit: int | None = None) -> Architecture:
    return Architecture(build=lambda shape, hp: _Limited(shape.channels * shape.height * shape.width,
                                                         shape.num_classes, train_limit, eval_limit),
                        description="an MLP with a memory limit")


@pytest.fixture
def data(digits_data):
    return digits_data


def test_a_split_step_trains_what_the_whole_batch_would_and_keeps_nothing_alive(data):
    ACTIVATIONS.clear()
    whole = start_training(_arch(), data, HP, seed=3)
    split = start_training(_arch(train_limit=100), data, HP, seed=3)
    for _ in range(2):
        a, b = whole.epoch(), split.epoch()
    assert whole.micro_batches == 1 and split.micro_batches == 4  # 256 -> 128 -> 64 images a part
    assert ACTIVATIONS and all(ref() is None for ref in ACTIVATIONS)  # the failed tries' activations are gone
    for name, tensor in whole.model.state_dict().items():
        torch.testing.assert_close(split.model.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    assert b.val_accuracy == pytest.approx(a.val_accuracy, abs=1 / len(data.val_y))
    assert b.train_loss == pytest.approx(a.train_loss, rel=1e-4)


def test_evaluation_halves_its_batch_until_it_fits(data):
    trainer = start_training(_arch(eval_limit=50), data, HP, seed=1)
    trainer.epoch()
    trainer.model.eval_limit = None
    expected = evaluate(trainer.model, data, data.val_x, data.val_y)
    trainer.model.eval_limit = 50
    assert evaluate(trainer.model, data, data.val_x, data.val_y) == pytest.approx(expected)


def test_a_model_that_cannot_fit_one_image_fails_saying_so(data):
    trainer = start_training(_arch(train_limit=0), data, HP, seed=0)
    with pytest.raises(DoesNotFit, match=r"one image does not fit in memory \(batch_size=256\)"):
        trainer.epoch()
    assert trainer.micro_batches == 256
