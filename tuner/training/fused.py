"""A cohort: K trials of one architecture trained as one stacked model, each with its own settings.

The members' modules are stacked with ``torch.func.stack_module_state`` and run with
``vmap(functional_call)``: one wide step instead of K narrow ones, which is what a small model
needs (most of its step is Python and kernel launches). Every member keeps what a trial alone
has: its own initial weights and batch order (both from its own seed), learning rate, weight
decay, momentum, dropout probability (a buffer, so that it can differ between members), learning
rate schedule, and BatchNorm statistics. What the members share is what a fused step must share:
the architecture, the batch size and the optimizer's kind (:data:`SHARED`).

The optimizers are written out (SGD with momentum, Adam, AdamW, as ``torch.optim`` computes
them, per-member scalars broadcast over the stack); the schedules are ``torch.optim``'s own,
each stepping a one-number stand-in optimizer. A member trained here ends where it would alone,
up to the order of floating-point sums (and dropout's random masks, which are drawn per member
but not from the same stream as alone).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from tuner.contract import Architecture, Hyperparameters
from tuner.data.prepared import PreparedData
from tuner.errors import TunerError
from tuner.runtime import interrupt
from tuner.training.loop import (
    PROGRESS_S,
    EpochResult,
    Trainer,
    autocast,
    eval_batch_size,
    make_scheduler,
)

#: What every member of a cohort has in common, besides the architecture and the plugin's own
#: hyperparameters (``extra``: a width changes the model's shapes).
SHARED = ("batch_size", "optimizer")

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


class CannotFuse(TunerError):
    """The architecture's modules cannot be stacked into one (the reason is the message)."""


class MemberDropout(nn.Module):
    """``nn.Dropout`` / ``nn.Dropout2d`` with its probability in a buffer: stacked, it differs
    per member. Not in the state dict, so a member's weights load into the plain model."""

    def __init__(self, p: float, channels: bool) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        like = x[:, :, :1, :1] if self.channels and x.dim() == 4 else x
        keep = (torch.rand_like(like) >= self.p).to(x.dtype)
        return x * keep / (1 - self.p).clamp_min(1e-6)


def _with_member_dropout(module: nn.Module) -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Dropout3d):
            setattr(module, name, MemberDropout(child.p, channels=not isinstance(child, nn.Dropout)))
        else:
            _with_member_dropout(child)
    return module


def _same_structure(models: Sequence[nn.Module]) -> None:
    """Raise :class:`CannotFuse` unless every member is the same module with other numbers."""
    first = models[0]
    shapes = [(n, t.shape, t.dtype) for n, t in itertools.chain(first.named_parameters(), first.named_buffers())]
    for other in models[1:]:
        if repr(other) != repr(first):
            raise CannotFuse("the members' modules differ beyond their numbers (a setting the build "
                             "reads is not a tensor)")
        mine = [(n, t.shape, t.dtype) for n, t in itertools.chain(other.named_parameters(), other.named_buffers())]
        if mine != shapes:
            raise CannotFuse("the members' parameters differ in shape")


class Cohort:
    """Trains K models of ``arch``, one per ``hps[k]`` seeded by ``seeds[k]``, as one.

    ``members`` are indices into the original K that are still trained: :meth:`keep` drops the
    others (a pruned trial), and the stack shrinks with them.
    """

    def __init__(self, arch: Architecture, data: PreparedData, hps: Sequence[Hyperparameters],
                 seeds: Sequence[int], *, amp: bool | None = None) -> None:
        for name in SHARED:
            if len({getattr(hp, name) for hp in hps}) != 1:
                raise CannotFuse(f"a cohort shares its {name}")
        self.device = data.train_x.device
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.arch, self.data, self.hps, self.seeds = arch, data, list(hps), list(seeds)
        models = []
        for hp, seed in zip(hps, seeds, strict=True):
            torch.manual_seed(seed)  # as start_training does: the same initial weights as alone
            models.append(_with_member_dropout(arch.build(data.shape, hp)).to(self.device))
        _same_structure(models)
        self.base = copy.deepcopy(models[0]).to("meta")
        params, self.buffers = stack_module_state(models)
        self.params = {n: p.detach().requires_grad_(True) for n, p in params.items()}
        self.state: dict[str, dict[str, torch.Tensor]] = {}  # optimizer state per parameter
        self.steps = 0
        self.members = list(range(len(hps)))
        self.on_batch: Callable[[int, int], None] | None = None
        self._cols: tuple[list[float], dict[str, dict[int, torch.Tensor]]] | None = None  # per-member scalars
        self.generators = [torch.Generator(device=self.device).manual_seed(s) for s in seeds]
        # torch.optim's schedules, each on a stand-in optimizer holding one member's lr.
        self.stand_ins = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=hp.lr) for hp in hps]
        self.schedulers = [make_scheduler(o, hp) for o, hp in zip(self.stand_ins, hps, strict=True)]

    @property
    def lrs(self) -> list[float]:
        return [self.stand_ins[k].param_groups[0]["lr"] for k in self.members]

    def keep(self, members: Sequence[int]) -> None:
        """Train only ``members`` from now on (each an index into the original K)."""
        rows = torch.tensor([self.members.index(k) for k in members], device=self.device)
        self.params = {n: p.detach()[rows].requires_grad_(True) for n, p in self.params.items()}
        self.buffers = {n: b[rows] for n, b in self.buffers.items()}
        self.state = {n: {k: v[rows] for k, v in s.items()} for n, s in self.state.items()}
        self.members = list(members)
        self._cols = None

    def _losses(self, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        def one(params, buffers, x, y):
            return F.cross_entropy(functional_call(self.base, (params, buffers), (x,)).float(), y)

        with autocast(self.device, self.amp):
            return vmap(one, randomness="different")(self.params, self.buffers, xs, ys)

    def train_epoch(self) -> torch.Tensor:
        """One pass over the training set for every member; their mean losses, (K,) on the device.
        ``on_batch(done, batches)``, when set, hears how far it is, as :class:`Trainer`'s does."""
        n = len(self.data.train_y)
        bs = min(self.hps[self.members[0]].batch_size, n)
        orders = torch.stack([torch.randperm(n, device=self.device, generator=self.generators[k])
                              for k in self.members])
        bounds = [*range(0, n, bs), n]
        if n % bs == 1 and len(bounds) > 2:
            del bounds[-2]  # a last batch of one breaks BatchNorm: folded into the one before, as alone
        total = torch.zeros(len(self.members), device=self.device)
        report, batches = self.on_batch, len(bounds) - 1
        if report is not None:
            report(0, batches)
        told = time.perf_counter()
        with interrupt.interruptible():
            for done, (start, end) in enumerate(itertools.pairwise(bounds), 1):
                interrupt.check()
                total += self.step(orders[:, start:end]) * (end - start)
                if report is not None and (now := time.perf_counter()) - told >= PROGRESS_S:
                    report(done, batches)
                    told = now
        return total / n

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every member, member ``i`` on its training examples ``idx[i]``;
        their mean losses, (K,), detached."""
        self.base.train()
        hp = [self.hps[k] for k in self.members]
        if self._cols is None or self._cols[0] != self.lrs:
            self._cols = (self.lrs, self._scalars(hp, self.lrs))
        xs = self.data.fit(self.data.train_x[idx.reshape(-1)]).unflatten(0, idx.shape)
        losses = self._losses(xs, self.data.train_y[idx])
        grads = torch.autograd.grad(losses.sum(), list(self.params.values()))
        self._update(dict(zip(self.params, grads, strict=True)), hp, self._cols[1])
        return losses.detach()

    def _scalars(self, hp: list[Hyperparameters], lr: list[float]) -> dict[str, dict[int, torch.Tensor]]:
        """This epoch's per-member scalars, one column per rank of the stacked tensors."""
        ranks = {p.dim() for p in self.params.values()}
        values = {"lr": lr, "wd": [h.weight_decay for h in hp], "momentum": [h.momentum for h in hp]}
        like = next(iter(self.params.values()))
        return {name: {r: torch.tensor(v, dtype=like.dtype, device=self.device).view(-1, *([1] * (r - 1)))
                       for r in ranks} for name, v in values.items()}

    @torch.no_grad()
    def _update(self, grads: dict[str, torch.Tensor], hp: list[Hyperparameters],
                cols: dict[str, dict[int, torch.Tensor]]) -> None:
        """One optimizer step of every member, as torch.optim's SGD, Adam or AdamW takes it (in
        place: the step is memory-bound, and a stacked model is K models' worth of memory)."""
        self.steps += 1
        kind, decay = hp[0].optimizer, any(h.weight_decay for h in hp)
        b1, b2 = ADAM_BETAS
        for name, p in self.params.items():
            g, state, r = grads[name], self.state.setdefault(name, {}), p.dim()
            if decay and kind == "adamw":
                p.mul_(1 - cols["lr"][r] * cols["wd"][r])
            elif decay:
                g.addcmul_(p, cols["wd"][r])
            if kind == "sgd":
                buf = state.get("momentum")
                if buf is None:
                    buf = state["momentum"] = g.clone()
                else:
                    buf.mul_(cols["momentum"][r]).add_(g)
                p.addcmul_(buf, cols["lr"][r], value=-1)
                continue
            if "m" not in state:
                state["m"], state["v"] = torch.zeros_like(p), torch.zeros_like(p)
            m, v = state["m"], state["v"]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            step = v.sqrt().div_(math.sqrt(1 - b2 ** self.steps)).add_(ADAM_EPS)
            torch.div(m, step, out=step)
            p.addcmul_(step, cols["lr"][r], value=-1 / (1 - b1 ** self.steps))

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Every member's mean loss and accuracy on ``x, y``, in eval mode, as alone."""
        self.base.eval()
        k = len(self.members)
        bs = max(1, eval_batch_size(self.data) // k)
        loss = torch.zeros(k, device=self.device)
        correct = torch.zeros(k, device=self.device, dtype=torch.int64)

        def logits_of(params, buffers, xb):
            return functional_call(self.base, (params, buffers), (xb,))

        for start in range(0, len(y), bs):
            interrupt.check()
            xb, yb = self.data.fit(x[start: start + bs]), y[start: start + bs]
            with autocast(self.device, self.amp):
                logits = vmap(logits_of, in_dims=(0, 0, None))(self.params, self.buffers, xb).float()
            loss += F.cross_entropy(logits.transpose(1, 2), yb.expand(k, -1), reduction="none").sum(1)
            correct += (logits.argmax(2) == yb).sum(1)
        return (loss / len(y)).tolist(), (correct / len(y)).tolist()

    def epoch(self) -> list[EpochResult]:
        """Train every member one epoch, validate, step each member's schedule."""
        lrs = self.lrs
        train = self.train_epoch().tolist()
        val_loss, val_acc = self.evaluate(self.data.val_x, self.data.val_y)
        results = []
        for i, k in enumerate(self.members):
            if not math.isfinite(train[i]):
                results.append(EpochResult(train[i], math.nan, 0.0, lrs[i]))
                continue
            scheduler = self.schedulers[k]
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(val_loss[i])
            elif scheduler is not None:
                with warnings.catch_warnings():  # its stand-in optimizer never steps: the cohort's does
                    warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler.step\(\)` before", UserWarning)
                    scheduler.step()
            results.append(EpochResult(train[i], val_loss[i], val_acc[i], lrs[i]))
        return results

    def model(self, member: int) -> nn.Module:
        """Member ``member``'s model as a plain module of the architecture (weights to save)."""
        row = self.members.index(member)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            plain = self.arch.build(self.data.shape, self.hps[member]).to(self.device)  # dropout's stream untouched
        state = plain.state_dict()
        stacked = {**self.params, **self.buffers}
        plain.load_state_dict({name: stacked[name][row].detach().clone() for name in state})
        return plain

    def trainer(self, member: int, seed: int) -> Trainer:
        """Member ``member`` as the :class:`Trainer` that trains it alone, in the state it has
        reached (weights, optimizer moments, schedule, batch order): what a checkpoint saves, so
        that the retry of an interrupted member goes on alone from there."""
        row, hp = self.members.index(member), self.hps[member]
        trainer = Trainer(self.model(member), hp, self.data, seed=seed, amp=self.amp)
        trainer.generator.set_state(self.generators[member].get_state())
        for (name, _), p in zip(trainer.model.named_parameters(), trainer.model.parameters(), strict=True):
            state = self.state.get(name)
            if not state:
                continue
            if hp.optimizer == "sgd":
                trainer.optimizer.state[p] = {"momentum_buffer": state["momentum"][row].clone()}
            else:
                trainer.optimizer.state[p] = {"step": torch.tensor(float(self.steps)),
                                              "exp_avg": state["m"][row].clone(),
                                              "exp_avg_sq": state["v"][row].clone()}
        if trainer.scheduler is not None:
            trainer.scheduler.load_state_dict(self.schedulers[member].state_dict())
        for group in trainer.optimizer.param_groups:
            group["lr"] = self.stand_ins[member].param_groups[0]["lr"]
        return trainer
