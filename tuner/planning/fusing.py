"""Whether fusing trials pays on this device: a fused cohort's step timed against the same step of
one model, and the cohort size (``--fuse``) it picks.

A cohort of K (:class:`tuner.training.fused.Cohort`) pays when one fused step takes less than K
steps of one model: ``ratio = K × step alone / fused step`` is the trials per hour a cohort trains
against one at a time. The probe times one model's step at the study's batch size, then cohorts of
:data:`SIZES` in turn (each the fastest of :data:`ROUNDS` rounds after :data:`WARM_UP` untimed
steps), and stops growing K once the ratio falls or the
device runs out of memory. It picks the K of the best ratio when that is at least :data:`PAYS`,
else 1. A step (of :data:`FIRST` images, then of a whole batch) that already takes
:data:`COMPUTE_BOUND_S` is the device computing, not Python launching kernels: fusing cannot pay,
and the probe times nothing more (AlexNet on a CPU costs two steps of 16 images, not minutes).
Before any timing, one fused step of two members on :data:`FIRST` images checks that the model
can be fused at all.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from tuner.contract import Architecture, Hyperparameters
from tuner.data.prepared import PreparedData
from tuner.errors import first_line
from tuner.training.fused import CannotFuse, Cohort
from tuner.training.loop import released, start_training

SIZES = (2, 4, 8, 16, 32)
PAYS = 1.15  # a cohort must train this many times the trials per hour of one at a time
COMPUTE_BOUND_S = 0.25  # a step this long (of FIRST images, or of a batch) is computing: fusing cannot pay
FIRST = 16  # images per member in the first steps: whether it can be fused, whether it is compute-bound
TIMED_S = 0.1  # about this long is timed in each round of each contender
ROUNDS, WARM_UP = 3, 3


@dataclass(frozen=True)
class FusePlan:
    """What the probe (or ``--fuse K``) chose, and why, for the line the CLI prints."""

    size: int
    device: str
    ratios: dict[int, float] = field(default_factory=dict)  # K -> trials/hour fused over alone
    step_s: float | None = None  # one model's step, when timed
    why_not: str = ""  # set when the model cannot be fused or the step is compute-bound
    asked: int | None = None  # --fuse K as given (None: chosen by the probe)

    def line(self) -> str:
        if self.why_not:
            return f"--fuse: one trial at a time: {self.why_not}"
        measured = ", ".join(f"K {k}: {r:.2f}×" for k, r in self.ratios.items())
        if self.asked is not None:
            return f"--fuse {self.asked}: {self.size} trials trained at once as one model on {self.device}"
        if self.size == 1:
            return (f"--fuse auto: one trial at a time: fusing does not pay on {self.device} (trials/hour of a "
                    f"fused cohort against one at a time: {measured})")
        return (f"--fuse auto: {self.size} trials trained at once as one model on {self.device}: "
                f"{self.ratios[self.size]:.2f}× the trials/hour of one at a time (measured: {measured})")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, repeats: int, device: torch.device, rounds: int = ROUNDS,  # type: ignore[no-untyped-def]
           warm_up: int = WARM_UP) -> float:
    """Seconds of one ``step()``: the fastest of ``rounds`` means of ``repeats`` calls, after
    ``warm_up`` untimed calls (a new shape's first steps pick kernels and fill caches; the
    fastest round is the one least disturbed by anything else on the machine)."""
    for _ in range(warm_up):
        step()
    best = math.inf
    for _ in range(rounds):
        _sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            step()
        _sync(device)
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def _cohort(arch: Architecture, data: PreparedData, hp: Hyperparameters, k: int) -> Cohort:
    return Cohort(arch, data, [hp] * k, list(range(k)))


def _batch(data: PreparedData, hp: Hyperparameters, k: int, most: int | None = None) -> torch.Tensor:
    bs = min(hp.batch_size, len(data.train_y), most or hp.batch_size)
    return torch.arange(bs, device=data.train_x.device).expand(k, -1)


def check(arch: Architecture, data: PreparedData, hp: Hyperparameters) -> str:
    """Why ``arch`` cannot be fused ("" when it can): a cohort of two is built and takes one
    step, as a study's first cohort would. A module that vmap refuses fails here."""
    with torch.random.fork_rng(devices=[data.train_x.device] if data.train_x.device.type == "cuda" else []):
        try:
            cohort = _cohort(arch, data, hp, 2)
            cohort.step(_batch(data, hp, 2, most=FIRST))
        except CannotFuse as e:
            return f"the model cannot be fused ({e})"
        except torch.OutOfMemoryError:
            released(data.train_x.device)
            return "two models' step does not fit in the device's memory"
        except Exception as e:  # vmap refuses the module: data-dependent Python, in-place ops, .item()
            return f"the model cannot be fused: {first_line(e, 160)}"
    return ""


def _compute_bound(images: int, took: float, where: str) -> FusePlan:
    return FusePlan(1, where, step_s=took, why_not=f"a step of {images} images takes {took:.2f} s on {where}: the "
                    "device is computing, not waiting on Python, so fusing cannot pay")


def probe(arch: Architecture, data: PreparedData, hp: Hyperparameters, most: int = SIZES[-1]) -> FusePlan:
    """Time one model's step and cohorts of :data:`SIZES` (up to ``most``) on ``data``'s device
    at ``hp``; the K that pays best, or 1. Trains throwaway models only (the global random
    generator is left as it was)."""
    device = data.train_x.device
    where = str(device)
    why_not = check(arch, data, hp)
    if why_not:
        return FusePlan(1, where, why_not=why_not)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        trainer = start_training(arch, data, hp, seed=0)
        step, few = trainer.step, _batch(data, hp, 1, most=FIRST)[0]
        step(few)
        started = time.perf_counter()
        step(few)
        _sync(device)
        if (took := time.perf_counter() - started) >= COMPUTE_BOUND_S:
            return _compute_bound(len(few), took, where)
        one = _batch(data, hp, 1)[0]
        first = _timed(lambda s=step: s(one), 1, device, rounds=1, warm_up=1)
        if first >= COMPUTE_BOUND_S:
            return _compute_bound(len(one), first, where)
        repeats = max(3, round(TIMED_S / max(first, 1e-6)))
        alone = _timed(lambda s=step: s(one), repeats, device)
        del trainer, step
        ratios: dict[int, float] = {}
        out_of_memory = 0
        for k in (s for s in SIZES if s <= most):
            try:
                cohort, idx = _cohort(arch, data, hp, k), _batch(data, hp, k)
                fused = _timed(lambda c=cohort, i=idx: c.step(i), max(2, repeats // k), device)
            except torch.OutOfMemoryError:
                released(device)
                out_of_memory = k
                break
            finally:
                cohort = None  # type: ignore[assignment]
            ratios[k] = k * alone / fused
            if len(ratios) > 1 and ratios[k] < max(ratios.values()):
                break
    if not ratios:  # no size to time (``most`` < 2), or two models already ran out of memory
        why = f"a cohort of {out_of_memory} does not fit in the device's memory" if out_of_memory else \
            "there is no cohort of 2 or more to make"
        return FusePlan(1, where, step_s=alone, why_not=why)
    best = max(ratios, key=lambda k: ratios[k])
    return FusePlan(best if ratios[best] >= PAYS else 1, where, ratios, alone)
