"""``--jobs auto``: how many trials fit at once on this machine's devices, from one measured step.

Before the study, one training step at the largest batch size of the space is measured
(:func:`tuner.planning.memory.step_peak_bytes`). A worker holds that, the data set, and what a
process holds before any of it (:data:`PROCESS_BYTES` on the CPU: Python, torch and tuner
imported; :data:`CUDA_CONTEXT_BYTES` more on a GPU for its CUDA context). As many workers as fit in
:data:`SHARE` of each device's free memory run, never more than the machine's CPU cores (a worker
needs one to feed its device, and on the CPU one computes with each) nor than ``MAX_JOBS``;
at least one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tuner.contract import Choice, Fixed, IntRange, Param
from tuner.errors import UsageError
from tuner.planning.memory import data_bytes, step_peak_bytes
from tuner.training.loop import DoesNotFit

PROCESS_BYTES = 550 * 2**20  # a worker with torch, Optuna and tuner imported: 523 MiB RSS, measured
CUDA_CONTEXT_BYTES = 600 * 2**20  # a CUDA context outside the allocator's count, about
SHARE = 0.8  # of a device's free memory that trials may fill
MiB = 2**20


@dataclass(frozen=True)
class JobsPlan:
    """What ``--jobs auto`` chose, and why, for the line the CLI prints."""

    jobs: int
    batch_size: int
    step_bytes: int  # a trial at the largest batch size, its model included
    data_bytes: int
    free: list[int]  # free bytes of each device the workers share
    cores: int
    device: str

    def line(self) -> str:
        each = f"{self.step_bytes / MiB:,.0f} MiB at batch size {self.batch_size} + {self.data_bytes / MiB:,.0f} MiB " \
               "of data"
        fit = min(self.fits()) * len(self.free)
        where = f"{len(self.free)} GPU{'s' if len(self.free) > 1 else ''}" if self.device == "cuda" else "memory"
        bound = "memory" if self.jobs == max(1, fit) and fit <= self.cores else \
            "CPU cores" if self.jobs == self.cores else "the most --jobs takes"
        return (f"--jobs auto: {self.jobs} trial{'s' if self.jobs > 1 else ''} at once (a trial holds {each}; "
                f"{fit} fit in {sum(self.free) / 2**30:,.1f} GiB free {where}, {self.cores} CPU cores; "
                f"bound by {bound})")

    def fits(self) -> list[int]:
        per = self.step_bytes + self.data_bytes + PROCESS_BYTES * (self.device == "cpu") \
            + CUDA_CONTEXT_BYTES * (self.device == "cuda")
        return [int(free * SHARE // per) for free in self.free]


def plan(step: int, data: int, free: list[int], cores: int, device: str, batch_size: int,
         most: int) -> JobsPlan:
    """The plan for trials of ``step`` bytes and a data set of ``data`` bytes on devices with
    ``free`` bytes each (one entry for the CPU's memory), ``cores`` CPU cores, at most ``most``."""
    draft = JobsPlan(1, batch_size, step, data, free, cores, device)
    fits = draft.fits()
    jobs = max(1, min(min(fits) * len(fits), cores, most))  # the same on each device: workers take them in turn
    return JobsPlan(jobs, batch_size, step, data, free, cores, device)


def largest_batch(param: Param | None, reference: int) -> int:
    """The largest batch size the space can draw (the reference's when it does not search it)."""
    if isinstance(param, Choice):
        return max(param.options)
    if isinstance(param, IntRange):
        return param.high
    if isinstance(param, Fixed):
        return param.value
    return reference


def free_memory(device: torch.device, devices: list[str]) -> list[int]:
    """Free bytes of each GPU in ``devices`` (CUDA's own count), or the machine's available memory."""
    if device.type == "cuda":
        return [torch.cuda.mem_get_info(torch.device(d))[0] for d in devices]
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return [int(line.split()[1]) * 1024]
    return [os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")]


def auto_jobs(arch, data, hp, devices: list[str], most: int) -> JobsPlan:  # type: ignore[no-untyped-def]
    """Measure a step of ``hp`` (already at the largest batch size) on ``data``'s device, and plan."""
    device = data.train_x.device
    try:
        step = step_peak_bytes(arch, data, hp)
    except DoesNotFit as e:
        raise UsageError(f"--jobs auto: {e}, so not even one trial fits; use a device with more memory") from None
    cores = os.cpu_count() or 1
    return plan(step, data_bytes(data), free_memory(device, devices), cores, device.type, hp.batch_size, most)
