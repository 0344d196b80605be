"""A trial's recipe: what re-training it needs (plugin names and versions, how its data was cut,
epochs, device, the versions that trained it), built in one place for a new trial and for a
trial of a study made before trials recorded one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.data.split import DataSettings

DEFAULT_EPOCHS = 10  # a study's epochs per trial unless --epochs says otherwise
DEFAULT_SEED = 0  # a study's seed unless --seed says otherwise


def recipe(described: Mapping[str, Any], settings: Mapping[str, Any], device: str, *, compile: bool = False,
           data_dir: str | None = None, versions: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``described``: the pair's names and versions (``Pair.describe()``, or a provenance that
    holds them); ``settings``: the data settings and ``epochs``; ``versions``: ``tuner_version``
    and ``torch_version`` (None: this process's)."""
    if versions is None:
        import torch  # only a process that trains asks for its own

        from tuner import __version__

        versions = {"tuner_version": __version__, "torch_version": torch.__version__}
    return {
        "plugin": described["plugin"], "architecture": described.get("architecture", {}),
        "dataset": described.get("dataset", {}), "data_dir": data_dir,
        **DataSettings.of(settings).as_dict(), "epochs": settings.get("epochs", DEFAULT_EPOCHS),
        "device": device, "compile": compile,
        "tuner_version": versions.get("tuner_version"), "torch_version": versions.get("torch_version"),
    }
