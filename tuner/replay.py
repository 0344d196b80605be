"""Rebuild a stored trial from its recipe: its plugin pair, its data, its model; re-train it.

A trial records its recipe when it starts (``tuner.objective.RECIPE_ATTR``): plugin names and
versions, the split seed, validation fraction and training cap, epochs, its own seed, the
device and thread count, tuner's and torch's versions. Trials stored before recipes existed are
rebuilt from the study's provenance (same seeds by construction), their thread count unknown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from tuner import __version__
from tuner.contract import Hyperparameters
from tuner.data import PreparedData
from tuner.errors import StudyError
from tuner.marks import RECIPE_ATTR
from tuner.objective import start_training, trial_seed
from tuner.run import Pair, load_data, load_pair, resolve_device

#: Recipe keys compared between the stored trial and this machine, in the order shown.
ENVIRONMENT_KEYS = ("tuner_version", "torch_version", "architecture_version", "dataset_version",
                    "device", "threads", "compile")


def find_trial(study: optuna.Study, number: int) -> FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.number == number:
            return trial
    held = f"0..{len(trials) - 1}" if trials else "none"
    raise StudyError(f"study {study.study_name!r} has no trial {number} (its trials: {held})")


def trained_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number``, which must have trained at least one epoch (there is something to compare)."""
    trial = find_trial(study, number)
    if not trial.user_attrs.get("history"):
        raise StudyError(f"trial {number} ({trial.state.name.lower()}) stored no epoch, so there is nothing to "
                         "compare; pick a trial that trained (see `tuner trials`)")
    return trial


def recipe_of(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The trial's recipe; for a trial from before recipes, the one its study's provenance implies."""
    recipe = trial.user_attrs.get(RECIPE_ATTR)
    if isinstance(recipe, dict):
        return recipe
    prov = study.user_attrs.get("provenance", {})
    if "plugin" not in prov or "hparams" not in trial.user_attrs:
        raise StudyError(f"trial {trial.number} of {study.study_name!r} records no recipe and its study no "
                         "provenance: it was not made by `tuner optimize` and cannot be rebuilt")
    seed = prov.get("seed", 0)
    return {
        "plugin": prov["plugin"], "architecture": prov.get("architecture", {}), "dataset": prov.get("dataset", {}),
        "seed": seed, "val_fraction": prov.get("val_fraction", 0.1), "max_train": prov.get("max_train"),
        "max_val": prov.get("max_val"),
        "epochs": prov.get("epochs", 10), "device": prov.get("device", "cpu"), "compile": False,
        "tuner_version": prov.get("tuner_version"), "torch_version": prov.get("torch_version"),
        "trial_seed": trial_seed(seed, trial.number), "threads": None,
    }


def hyperparameters_of(trial: FrozenTrial) -> Hyperparameters:
    return Hyperparameters.from_dict(trial.user_attrs["hparams"])


@dataclass
class Rebuilt:
    """A trial's pair and data, prepared as its study prepared them."""

    pair: Pair
    data: PreparedData
    device: torch.device
    recipe: dict[str, Any]


def rebuild(study: optuna.Study, trial: FrozenTrial, data_dir: Path, device: str | None = None) -> Rebuilt:
    """Load the trial's plugins and data. ``device`` None: the trial's own when this machine has
    it, else the CPU."""
    recipe = recipe_of(study, trial)
    pair = load_pair(recipe["plugin"])
    if device is None:
        stored = str(recipe.get("device") or "cpu")
        device = stored if stored == "cpu" or torch.cuda.is_available() else "cpu"
    chosen = resolve_device(device)
    data = load_data(pair, data_dir, chosen, recipe)
    return Rebuilt(pair, data, chosen, recipe)


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


def reproduce(study: optuna.Study, number: int, data_dir: Path, device: str | None = None,
              on_epoch: Callable[[int, float, float], None] | None = None) -> Reproduced:
    """Re-train trial ``number`` for as many epochs as it stored, with its seed, settings, data
    split and (on the CPU) thread count; ``on_epoch(epoch, stored, reproduced)`` per epoch."""
    trial = trained_trial(study, number)
    history = trial.user_attrs["history"]
    rebuilt = rebuild(study, trial, data_dir, device)
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
