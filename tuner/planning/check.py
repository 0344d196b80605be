"""A pair checked on one tiny batch of its own data, on the CPU, before anything is stored
(``tuner plugins --check`` and the start of every study), and its step timed there."""

from __future__ import annotations

from pathlib import Path

import torch

from tuner.data.loading import load_splits
from tuner.data.prepared import load_data, model_shape, normalize, resize
from tuner.data.split import DataSettings
from tuner.errors import PairRefused
from tuner.planning.timing import Timing, measure
from tuner.plugins.checks import StepReport, build_model, default_hyperparameters, one_step
from tuner.plugins.pair import Pair
from tuner.training.loop import Trainer, start_training


def contract_step(pair: Pair, data_dir: Path, n: int = 2) -> StepReport:
    """Build the pair with its reference settings and train one batch of ``n`` on the CPU."""
    splits = load_splits(pair.dataset_name, pair.dataset, data_dir, pair.dataset_dist)
    shape = model_shape(pair.arch, pair.dataset)
    hp = default_hyperparameters(pair.arch)
    try:
        model = build_model(pair.arch, shape, hp, name=pair.arch_name, distribution=pair.arch_dist)
    except PairRefused as e:
        raise PairRefused(f"{pair.arch_name} cannot take {pair.dataset_name}: {e}") from None
    x = normalize(splits.train_images[:n], pair.dataset)
    if pair.arch.input_size is not None:
        x = resize(x, pair.arch.input_size)
    return one_step(model, x, splits.train_labels[:n], shape, name=pair.arch_name,
                    distribution=pair.arch_dist)


def reference_trainer(pair: Pair, data_dir: Path, device: torch.device, seed: int = 0,
                      max_train: int | None = None, max_val: int | None = None) -> Trainer:
    """A fresh model of the pair's reference settings on its own data, split as a study splits it."""
    data = load_data(pair, data_dir, device, DataSettings(seed, max_train=max_train, max_val=max_val))
    return start_training(pair.arch, data, default_hyperparameters(pair.arch), seed)


def step_timing(pair: Pair, data_dir: Path, seed: int = 0) -> tuple[Timing, int, int]:
    """A step of the pair's reference settings timed on the CPU, on its own data as a study
    splits it; with the training and validation sizes an epoch has."""
    trainer = reference_trainer(pair, data_dir, torch.device("cpu"), seed)
    return measure(trainer), len(trainer.data.train_y), len(trainer.data.val_y)
