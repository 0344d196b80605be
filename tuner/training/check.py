"""A pair checked on one tiny batch of its own data, on the CPU, before anything is stored
(``tuner plugins --check`` and the start of every study)."""

from __future__ import annotations

from pathlib import Path

from tuner.data.loading import load_splits
from tuner.data.prepared import model_shape, normalize, resize
from tuner.errors import PairRefused
from tuner.plugins.checks import StepReport, build_model, default_hyperparameters, one_step
from tuner.plugins.pair import Pair


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
