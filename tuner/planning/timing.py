"""How long a training step and an evaluation take on this device: a few real steps timed, and
scaled to a batch size.

A step of a big model at its batch size can take tens of seconds on a CPU (AlexNet at 224x224,
a batch of 1,000), so the real size is timed only when it is cheap; otherwise batches growing up to one that takes
about :data:`TARGET_S` are timed, and the step is scaled along a line through the last two: a
fixed cost per step plus one per image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from tuner.training.loop import Trainer, eval_batch_size

TARGET_S = 2.0  # about what timing one batch size may cost
FIRST = 8  # images of the first, cheap, timed step
MAX_REPEATS = 5
MAX_SIZES = 4  # batch sizes timed at most


@dataclass(frozen=True)
class Timing:
    """One training step of ``batch_size`` images takes ``step_s``; evaluating an image, ``eval_image_s``.
    ``measured_at``: the batch size actually timed (smaller when the real one was too slow to time)."""

    batch_size: int
    step_s: float
    eval_image_s: float
    measured_at: int

    def epoch_s(self, train: int, val: int) -> float:
        """One epoch: ``train`` examples in steps of the batch size, then ``val`` evaluated."""
        return math.ceil(train / self.batch_size) * self.step_s + val * self.eval_image_s

    def describe(self) -> str:
        scaled = "" if self.measured_at == self.batch_size else f", timed at {self.measured_at} and scaled"
        return f"{seconds(self.step_s)} a step of {self.batch_size} images{scaled}"


def seconds(s: float) -> str:
    """``0.012 s``, ``1.4 s``, ``38 s``."""
    return f"{s:.2g} s" if s < 10 else f"{s:.0f} s"


def duration(s: float) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.1 days``: a length of time to the precision it is known."""
    if s < 90:
        return seconds(s)
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 48 * 3600:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _steps(trainer: Trainer, size: int, repeats: int) -> float:
    """Mean seconds of ``repeats`` training steps on the first ``size`` training examples."""
    idx = torch.arange(size, device=trainer.device)
    trainer.model.train()
    _sync(trainer.device)
    started = time.perf_counter()
    for _ in range(repeats):
        trainer.step(idx)
    _sync(trainer.device)
    return (time.perf_counter() - started) / repeats


@torch.inference_mode()
def _eval_image_s(trainer: Trainer, size: int) -> float:
    """Seconds to evaluate one image, from one batch of ``size`` validation (or training) images."""
    data = trainer.data
    x = data.val_x if len(data.val_y) else data.train_x
    batch = data.fit(x[:size])
    trainer.model.eval()
    _sync(trainer.device)
    started = time.perf_counter()
    trainer.model(batch).argmax(1)
    _sync(trainer.device)
    return (time.perf_counter() - started) / len(batch)


def _fresh(trainer: Trainer, size: int) -> float:
    """Seconds of one step at a batch size not timed before: the first step at a new shape also
    picks and builds its kernels (seconds for AlexNet's convolutions on a CPU), so the faster of two."""
    return min(_steps(trainer, size, 1), _steps(trainer, size, 1))


def _at_batch_size(trainer: Trainer, bs: int) -> tuple[float, int]:
    """Seconds of one step of ``bs`` images, and the largest batch size timed to say it. Sizes
    grow from :data:`FIRST` towards one that takes about :data:`TARGET_S`; a size short of
    ``bs`` is scaled by a line through the last two (a fixed cost per step plus one per image)."""
    size = min(bs, FIRST)
    _steps(trainer, size, 1)  # warm-up: first calls allocate and pick kernels
    points = [(size, _fresh(trainer, size))]
    while size < bs and (len(points) == 1 or points[-1][1] < TARGET_S / 2) and len(points) < MAX_SIZES:
        last, took = points[-1]
        size = min(bs, max(4 * last, int(last * TARGET_S / max(took, 1e-6))))
        points.append((size, _fresh(trainer, size)))
    if size == bs:
        took = points[-1][1]
        if took < TARGET_S / 2:  # cheap: average more steps
            took = _steps(trainer, bs, max(1, min(MAX_REPEATS, int(TARGET_S / max(took, 1e-6)))))
        return took, bs
    (b1, t1), (b2, t2) = points[-2:]
    per_image = (t2 - t1) / (b2 - b1)
    if per_image <= 0:  # noise: scale the larger size alone
        return t2 * bs / b2, b2
    return t1 + per_image * (bs - b1), b2


def measure(trainer: Trainer, batch_size: int | None = None) -> Timing:
    """Time ``trainer``'s steps at ``batch_size`` (default its own) and its evaluation. The
    trainer's model is trained by it: give it a throwaway one."""
    n = len(trainer.data.train_y)
    bs = min(batch_size or trainer.hp.batch_size, n)
    step, at = _at_batch_size(trainer, bs)
    eval_size = min(at, eval_batch_size(trainer.data), len(trainer.data.val_y) or n)
    _eval_image_s(trainer, eval_size)  # warm-up
    return Timing(bs, step, _eval_image_s(trainer, eval_size), at)
