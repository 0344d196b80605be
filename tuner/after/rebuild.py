"""A stored trial rebuilt from its recipe: its plugin pair, its data as its study prepared them,
its hyperparameters; below both ``tuner reproduce`` and ``tuner export``.

A trial records its recipe when it starts (``records.RECIPE``): plugin names and versions, the
split seed, validation fraction and training cap, epochs, its own seed, the device and thread
count, tuner's and torch's versions. Trials stored before recipes existed are rebuilt from the
study's provenance (same seeds by construction), their thread count unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial

from tuner.contract import Hyperparameters
from tuner.data.loading import default_data_dir
from tuner.data.prepared import PreparedData, load_data
from tuner.errors import PluginNotFound, StudyError
from tuner.plugins.pair import Pair, load_pair
from tuner.storage import records
from tuner.training.device import resolve_device
from tuner.training.loop import trial_seed
from tuner.trial.recipe import recipe


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
    if not trial.user_attrs.get(records.HISTORY):
        raise StudyError(f"trial {number} ({trial.state.name.lower()}) stored no epoch, so there is nothing to "
                         "compare; pick a trial that trained (see `tuner trials`)")
    return trial


def recipe_of(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
    """The trial's recipe; for a trial from before recipes, the one its study's provenance implies."""
    stored = trial.user_attrs.get(records.RECIPE)
    if isinstance(stored, dict):
        return stored
    prov = records.provenance(study)
    if "plugin" not in prov or records.HPARAMS not in trial.user_attrs:
        raise StudyError(f"trial {trial.number} of {study.study_name!r} records no recipe and its study no "
                         "provenance: it was not made by `tuner optimize` and cannot be rebuilt")
    seed = prov.get("seed", 0)
    versions = {key: prov.get(key) for key in ("tuner_version", "torch_version")}
    return {**recipe(prov, prov, prov.get("device", "cpu"), versions=versions),
            "trial_seed": trial_seed(seed, trial.number), "threads": None}


def hyperparameters_of(trial: FrozenTrial) -> Hyperparameters:
    return Hyperparameters.from_dict(trial.user_attrs[records.HPARAMS])


@dataclass
class Rebuilt:
    """A trial's pair and data, prepared as its study prepared them."""

    pair: Pair
    data: PreparedData
    device: torch.device
    recipe: dict[str, Any]


def rebuild(study: optuna.Study, trial: FrozenTrial, data_dir: Path | None = None,
            device: str | None = None) -> Rebuilt:
    """Load the trial's plugins and data. ``data_dir`` None: the folder the study was made with
    (see :func:`data_dir_of`). ``device`` None: the trial's own when this machine has it, else
    the CPU."""
    recipe = recipe_of(study, trial)
    pair = pair_of(trial, recipe)
    data_dir = data_dir if data_dir is not None else data_dir_of(trial, recipe)
    if device is None:
        stored = str(recipe.get("device") or "cpu")
        device = stored if stored == "cpu" or torch.cuda.is_available() else "cpu"
    chosen = resolve_device(device)
    data = load_data(pair, data_dir, chosen, recipe)
    return Rebuilt(pair, data, chosen, recipe)


def pair_of(trial: FrozenTrial, recipe: dict[str, Any]) -> Pair:
    """The trial's plugin pair; one that is no longer installed is named with where it came from."""
    try:
        return load_pair(recipe["plugin"])
    except PluginNotFound:
        parts = [f"{recipe[kind]['name']} from {recipe[kind].get('distribution', '?')} "
                 f"{recipe[kind].get('version', '')}".strip() for kind in ("architecture", "dataset")
                 if isinstance(recipe.get(kind), dict) and "name" in recipe[kind]]
        made = f" ({', '.join(parts)})" if parts else ""
        raise StudyError(f"trial {trial.number} was trained with the plugin {recipe['plugin']}{made}, which is not "
                         "installed here; install it to rebuild the trial") from None


def data_dir_of(trial: FrozenTrial, recipe: dict[str, Any]) -> Path:
    """The data folder the trial's study was made with, when it recorded one (a folder that is
    gone is one line), else the usual default (``$TUNER_DATA_DIR``, else the user's cache)."""
    stored = recipe.get("data_dir")
    if not stored:
        return default_data_dir(None)
    if not Path(stored).is_dir():
        raise StudyError(f"trial {trial.number} was trained on the data in {stored}, which is not there any more; "
                         "give --data-dir where the data is now")
    return Path(stored)
