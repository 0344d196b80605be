"""Which device trials run on: ``--device auto|cpu|cuda|cuda:N|cuda:0,cuda:2`` checked against
this machine, and which device each ``--jobs`` worker takes."""

from __future__ import annotations

import torch

from tuner.errors import UsageError


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``; of a list
    (``cuda:0,cuda:2``, each checked), the first."""
    if "," in spec:
        first, *_ = [resolve_device(part.strip()) for part in spec.split(",")]  # each checked
        return first
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {spec!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA GPU is visible here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {spec}: only {torch.cuda.device_count()} GPU(s) here (cuda:0..)"
            )
    return device


def worker_devices(spec: str, jobs: int) -> list[str]:
    """The device of each of ``jobs`` workers, in turn over the devices ``spec`` names: every
    visible GPU for ``auto`` and ``cuda`` (``cuda:0``, ``cuda:1``, ...), the listed ones for
    ``cuda:0,cuda:2``; ``cpu`` and ``cuda:N`` put every worker on that one."""
    if "," in spec:
        devices = [str(resolve_device(part.strip())) for part in spec.split(",")]
    else:
        device = resolve_device(spec)
        if device.type == "cuda" and device.index is None:
            devices = [f"cuda:{k}" for k in range(torch.cuda.device_count())]
        else:
            devices = [str(device)]
    return [devices[i % len(devices)] for i in range(jobs)]


def device_kind(device: torch.device | str) -> str:
    """What a batch that did not fit is remembered against: ``"cpu"``, or the GPU's model and
    memory (``"NVIDIA H200 (139 GiB)"``): every GPU of that kind, whichever its index."""
    device = torch.device(device)
    if device.type != "cuda":
        return device.type
    props = torch.cuda.get_device_properties(device)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
