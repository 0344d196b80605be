"""What one trial holds in memory at most, measured on one training step at a given batch size.

On a GPU it is the allocator's own count: the peak of ``torch.cuda.max_memory_allocated`` over
building the model and one step (forward, backward, optimizer), less what was allocated before
(the data set, which each worker holds once, is counted apart). On the CPU there is no such
counter, so the step counts what it holds at its peak: every tensor autograd keeps for the backward
pass (by storage, once each), plus the parameters, their gradients and the optimizer's state.
"""

from __future__ import annotations

import torch

from tuner.contract import Architecture, Hyperparameters
from tuner.data.prepared import PreparedData
from tuner.training.loop import start_training


def data_bytes(data: PreparedData) -> int:
    """The prepared tensors a worker holds on its device for the whole study."""
    return sum(t.untyped_storage().nbytes() for t in (data.train_x, data.train_y, data.val_x, data.val_y))


def step_peak_bytes(arch: Architecture, data: PreparedData, hp: Hyperparameters) -> int:
    """Bytes one trial of ``hp`` holds at the peak of a training step, its model included."""
    device = data.train_x.device
    n = len(data.train_y)
    idx = torch.arange(hp.batch_size, device=device) % n
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        trainer = start_training(arch, data, hp, seed=0)
        trainer.step(idx)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    trainer = start_training(arch, data, hp, seed=0)
    state = [*trainer.model.parameters(), *trainer.model.buffers()]
    own = {t.untyped_storage().data_ptr() for t in state}
    saved: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        trainer.step(idx)
    held = [*state, *(p.grad for p in trainer.model.parameters() if p.grad is not None),
            *(v for s in trainer.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))]
    return sum(saved.values()) + sum(t.untyped_storage().nbytes() for t in held)
