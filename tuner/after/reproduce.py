"""``tuner reproduce``: a stored trial re-trained from its recipe, compared with what was stored
epoch by epoch, and the environment differences that may explain a drift."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from tuner import __version__
from tuner.after.rebuild import Rebuilt, hyperparameters_of, rebuild, trained_trial
from tuner.storage.records import view
from tuner.training.loop import start_training

#: Recipe keys compared between the stored trial and this machine, in the order shown.
ENVIRONMENT_KEYS = ("tuner_version", "torch_version", "architecture_version", "dataset_version",
                    "device", "threads", "compile")


def environment(rebuilt: Rebuilt, threads: int | None) -> dict[str, Any]:
    """``{"stored": {...}, "now": {...}, "differs": [keys]}`` over :data:`ENVIRONMENT_KEYS`."""
    recipe, pair = rebuilt.recipe, rebuilt.pair
    stored = {
        "tuner_version": recipe.get("tuner_version"), "torch_version": recipe.get("torch_version"),
        "architecture_version": recipe.get("architecture", {}).get("version"),
        "dataset_version": recipe.get("dataset", {}).get("version"),
        "device": recipe.get("device"), "threads": recipe.get("threads"), "compile": recipe.get("compile", False),
    }
    now = {
        "tuner_version": __version__, "torch_version": torch.__version__,
        "architecture_version": pair.arch_version, "dataset_version": pair.dataset_version,
        "device": str(rebuilt.device), "threads": threads, "compile": False,
        "python_version": sys.version.split()[0],
    }
    differs = [k for k in ENVIRONMENT_KEYS if stored[k] is not None and stored[k] != now[k]]
    return {"stored": stored, "now": now, "differs": differs}


@dataclass
class Reproduced:
    """A trial re-trained: its stored and reproduced validation accuracy per epoch (fractions)."""

    trial: int
    stored: list[float]
    reproduced: list[float]
    environment: dict[str, Any]

    @property
    def max_drift(self) -> float:
        """The largest per-epoch difference, in percentage points."""
        return max((abs(a - b) * 100 for a, b in zip(self.stored, self.reproduced, strict=True)), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "stored": self.stored, "reproduced": self.reproduced,
                "max_drift": self.max_drift, "environment": self.environment}


def reproduce(study: optuna.Study, number: int, data_dir: Path | None = None, device: str | None = None,
              on_epoch: Callable[[int, float, float], None] | None = None,
              on_start: Callable[[], None] | None = None) -> Reproduced:
    """Re-train trial ``number`` for as many epochs as it stored, with its seed, settings, data
    split and (on the CPU) thread count. ``on_start()`` once the trial is rebuilt (its plugins and
    data found), ``on_epoch(epoch, stored, reproduced)`` per epoch."""
    trial = trained_trial(study, number)
    history = view(trial).history
    rebuilt = rebuild(study, trial, data_dir, device)
    if on_start is not None:
        on_start()
    threads = rebuilt.recipe.get("threads")
    if rebuilt.device.type == "cpu" and threads:
        torch.set_num_threads(int(threads))  # a reduction split across other threads rounds otherwise
    trainer = start_training(rebuilt.pair.arch, rebuilt.data, hyperparameters_of(trial), rebuilt.recipe["trial_seed"])
    stored = [row["val_accuracy"] for row in history]
    reproduced = []
    for epoch, before in enumerate(stored, start=1):
        reproduced.append(trainer.epoch().val_accuracy)
        if on_epoch is not None:
            on_epoch(epoch, before, reproduced[-1])
    return Reproduced(number, stored, reproduced, environment(rebuilt, torch.get_num_threads()))
