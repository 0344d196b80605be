"""The training loop and evaluation. Short on purpose: this is where a study spends its time.

Batches are index slices of tensors already on the device. The step does no host sync: the
loss is summed on the device and read once per epoch. Evaluation runs in large batches under
``torch.inference_mode()``.
"""

from __future__ import annotations

import gc
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tuner.contract import Architecture, Hyperparameters
from tuner.data.prepared import PreparedData
from tuner.errors import TrialFailed
from tuner.runtime import interrupt

# torch.compile keys its graphs on shapes, and a study changes them: batch sizes, the last
# partial batch, layer widths, training and evaluation (two graphs per shape). Under torch's
# default limit of 8 recompiles a width-searching study (netwidth-digits) ran its later trials
# uncompiled, after torch's warning. 64 keeps --compile compiling.
RECOMPILE_LIMIT = 64

# How often a training epoch tells how far it is (batches done): often enough for a live view,
# rare enough to cost nothing (a clock read per batch, no host sync).
PROGRESS_S = 0.5

# A model this big gets a no-op hook per parameter on the CPU, so that a Ctrl-C lands inside its
# backward pass (seconds long); a small one's pass is short, and a hook call per tensor per step
# would be a cost it notices.
HOOKED_PARAMETERS = 1_000_000


class DoesNotFit(TrialFailed):
    """Not even one image fits in the device's memory: no split can save the trial."""


def tune_compiler_for_studies() -> None:
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = max(dynamo.recompile_limit, RECOMPILE_LIMIT)


@dataclass(frozen=True)
class EpochResult:
    train_loss: float
    val_loss: float
    val_accuracy: float  # fraction in [0, 1]
    lr: float  # learning rate the epoch trained with


def make_optimizer(model: nn.Module, hp: Hyperparameters) -> torch.optim.Optimizer:
    params = model.parameters()
    if hp.optimizer == "sgd":
        return torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
    if hp.optimizer == "adam":
        return torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
    return torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, hp: Hyperparameters):
    if hp.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=hp.plateau_factor, patience=hp.plateau_patience,
            threshold=hp.plateau_threshold, cooldown=hp.plateau_cooldown,
            min_lr=min(hp.plateau_min_lr, hp.lr),
        )
    if hp.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=hp.step_size, gamma=hp.step_gamma)
    return None


def eval_batch_size(data: PreparedData) -> int:
    """Large batches for evaluation: about 16 M input values each, 64 to 4096 images."""
    per_image = data.shape.channels * data.shape.height * data.shape.width
    return max(64, min(4096, (1 << 24) // per_image))


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 mixed precision (used on CUDA; a no-op context when not enabled)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def memory_of(device: torch.device) -> str:
    """``"80 GiB"`` of a CUDA device, else ``"memory"``: what a model that does not fit names."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB"
    return "memory"


def released(device: torch.device) -> None:
    """After an out-of-memory error, once its traceback is gone: the cached blocks back to the device."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _in_halves(bs: int, run: Callable[[int], Any], device: torch.device) -> Any:
    """``run(bs)``, again at half the batch size after each out-of-memory error (evaluation)."""
    while True:
        try:
            return run(bs)
        except torch.OutOfMemoryError:
            pass  # leaving the handler drops the traceback, and the activations its frames held
        released(device)
        if bs == 1:
            raise DoesNotFit(f"one image does not fit in {memory_of(device)} for evaluation")
        bs = max(1, bs // 2)


def evaluate(
    model: nn.Module, data: PreparedData, x: torch.Tensor, y: torch.Tensor, *, amp: bool = False
) -> tuple[float, float]:
    """Mean loss and accuracy (a fraction) of ``model`` on ``x, y``; one host sync at the end.
    Out of memory, it starts again at half the batch size."""
    return _in_halves(eval_batch_size(data), lambda bs: _evaluate(model, data, x, y, bs, amp), x.device)


@torch.inference_mode()
def _evaluate(model: nn.Module, data: PreparedData, x: torch.Tensor, y: torch.Tensor, bs: int,
              amp: bool) -> tuple[float, float]:
    model.eval()
    device = x.device
    loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    with interrupt.interruptible():
        for start in range(0, len(y), bs):
            interrupt.check()
            xb, yb = data.fit(x[start : start + bs]), y[start : start + bs]
            with autocast(device, amp):
                logits = model(xb)
            loss += F.cross_entropy(logits.float(), yb, reduction="sum")
            correct += (logits.argmax(1) == yb).sum()
        return loss.item() / len(y), correct.item() / len(y)


def correct_examples(
    model: nn.Module, data: PreparedData, x: torch.Tensor, y: torch.Tensor, *, amp: bool = False
) -> torch.Tensor:
    """Which examples of ``x, y`` the model gets right: a bool tensor on the CPU, shape (N,).
    Two models' masks on one set give a paired comparison (``tuner.after.summary.difference``)."""
    return _in_halves(eval_batch_size(data), lambda bs: _correct(model, data, x, y, bs, amp), x.device)


@torch.inference_mode()
def _correct(model: nn.Module, data: PreparedData, x: torch.Tensor, y: torch.Tensor, bs: int,
             amp: bool) -> torch.Tensor:
    model.eval()
    parts = []
    for start in range(0, len(y), bs):
        with autocast(x.device, amp):
            logits = model(data.fit(x[start : start + bs]))
        parts.append(logits.argmax(1) == y[start : start + bs])
    return torch.cat(parts).cpu()


def _signals_land_here(grad: torch.Tensor) -> None:
    """A parameter's gradient hook that does nothing: Python runs a pending signal's handler on
    entering it (tuner.runtime.interrupt raises there while training computes)."""


class Trainer:
    """Trains one model with one set of hyperparameters on prepared data.

    Args:
        model: A freshly built model (moved to the data's device here).
        hp: The trial's hyperparameters.
        data: Prepared tensors, already on the device.
        seed: Seeds the batch order (and nothing global), so trials are reproducible.
        amp: bf16 autocast (CUDA). ``None`` picks it on CUDA, off on CPU.
        compile: ``torch.compile`` the model in place (its state dict keeps its keys). The first
            trial pays the compile time; later trials of the same architecture and shapes reuse
            the compiled graphs (benchmarks/compile.py measures both).

    ``on_batch(done, batches)``, when set, hears how far a training epoch is: at its start and
    then at most every :data:`PROGRESS_S` seconds.
    """

    def __init__(
        self, model: nn.Module, hp: Hyperparameters, data: PreparedData, *, seed: int = 0,
        amp: bool | None = None, compile: bool = False,
    ) -> None:
        self.device = data.train_x.device
        cuda = self.device.type == "cuda"
        self.amp = cuda if amp is None else amp
        memory_format = torch.channels_last if cuda else torch.contiguous_format
        self.model = model.to(self.device, memory_format=memory_format)
        if compile:
            tune_compiler_for_studies()
            self.model.compile()
        self.hp = hp
        self.data = data
        self.optimizer = make_optimizer(self.model, hp)
        self.scheduler = make_scheduler(self.optimizer, hp)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.micro_batches = 1  # parts a step is split into after running out of memory (step)
        self.on_batch: Callable[[int, int], None] | None = None
        if self.device.type == "cpu" and sum(p.numel() for p in self.model.parameters()) >= HOOKED_PARAMETERS:
            # On the CPU, backward runs in this (the main) thread inside one C++ call, for all its
            # layers: a hook per parameter is Python code between layers, where a Ctrl-C can land.
            for p in self.model.parameters():
                if p.requires_grad:
                    p.register_hook(_signals_land_here)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def train_epoch(self) -> torch.Tensor:
        """One pass over the training set. Returns the mean loss as a 0-d device tensor."""
        n = len(self.data.train_y)
        bs = min(self.hp.batch_size, n)
        order = torch.randperm(n, device=self.device, generator=self.generator)
        # A last batch of one breaks BatchNorm in training mode: fold it into the one before.
        bounds = [*range(0, n, bs), n]
        if n % bs == 1 and len(bounds) > 2:
            del bounds[-2]
        total = torch.zeros((), device=self.device)
        self.model.train()
        report, batches = self.on_batch, len(bounds) - 1
        if report is not None:
            report(0, batches)
        told = time.perf_counter()
        # Computing only: a Ctrl-C or SIGTERM stops it at once (a stop noted by another thread,
        # at the next batch).
        with interrupt.interruptible():
            for done, (start, end) in enumerate(itertools.pairwise(bounds), 1):
                interrupt.check()
                idx = order[start:end]
                total += self.step(idx) * len(idx)
                if report is not None and (now := time.perf_counter()) - told >= PROGRESS_S:
                    report(done, batches)
                    told = now
        return total / n

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the training examples ``idx``; their mean loss, detached, on the device.

        Out of memory, the step is taken again as twice as many micro-batches whose gradients add
        up to the whole batch's (:attr:`micro_batches`, kept for the rest of the trial): the
        effective batch size, and so the result, stays what the trial asked for (BatchNorm aside:
        its statistics are of the micro-batch). :class:`DoesNotFit` when one image does not."""
        while True:
            try:
                if self.micro_batches == 1:
                    return self._step(idx)
                return self._accumulated_step(idx)
            except torch.OutOfMemoryError:
                pass  # leaving the handler drops the traceback, and the activations its frames held
            self.optimizer.zero_grad(set_to_none=True)
            released(self.device)
            if self.micro_batches >= len(idx):
                raise DoesNotFit(f"one image does not fit in {memory_of(self.device)} "
                                 f"(batch_size={self.hp.batch_size})")
            self.micro_batches = min(2 * self.micro_batches, len(idx))

    def _step(self, idx: torch.Tensor) -> torch.Tensor:
        x, y = self.data.fit(self.data.train_x[idx]), self.data.train_y[idx]
        with autocast(self.device, self.amp):
            loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def _accumulated_step(self, idx: torch.Tensor) -> torch.Tensor:
        """The step of :meth:`_step` in :attr:`micro_batches` parts: each part's mean loss weighted
        by its share of the batch, so the gradients sum to the whole batch's."""
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for part in idx.tensor_split(self.micro_batches):
            x, y = self.data.fit(self.data.train_x[part]), self.data.train_y[part]
            with autocast(self.device, self.amp):
                loss = F.cross_entropy(self.model(x), y)
            (loss * (len(part) / len(idx))).backward()
            total += loss.detach() * len(part)
        self.optimizer.step()
        return total / len(idx)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        return evaluate(self.model, self.data, x, y, amp=self.amp)

    def epoch(self) -> EpochResult:
        """Train one epoch, validate, step the scheduler on validation loss."""
        lr = self.lr
        train_loss = self.train_epoch().item()
        if not math.isfinite(train_loss):
            return EpochResult(train_loss, math.nan, 0.0, lr)
        val_loss, val_acc = self.evaluate(self.data.val_x, self.data.val_y)
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val_loss)
        elif self.scheduler is not None:
            self.scheduler.step()
        return EpochResult(train_loss, val_loss, val_acc, lr)


def start_training(arch: Architecture, data: PreparedData, hp: Hyperparameters, seed: int,
                   compile: bool = False) -> Trainer:
    """A fresh model and its trainer, seeded: the same seed gives the same weights, dropout
    masks and batch order, which is what lets ``tuner reproduce`` re-run a trial exactly."""
    torch.manual_seed(seed)
    return Trainer(arch.build(data.shape, hp), hp, data, seed=seed, compile=compile)


def trial_seed(study_seed: int, number: int) -> int:
    """Trial ``number``'s own seed (weights, dropout, batch order), from the study's."""
    return study_seed * 100_003 + number
