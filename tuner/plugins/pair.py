"""An architecture and a dataset paired by name (``lenet-digits``), loaded and checked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuner.contract import Architecture, Dataset
from tuner.plugins.registry import Registry, registry


@dataclass(frozen=True)
class Pair:
    """An architecture and a dataset, loaded and checked."""

    arch_name: str
    dataset_name: str
    arch: Architecture
    dataset: Dataset
    arch_dist: str
    arch_version: str
    dataset_dist: str
    dataset_version: str

    @property
    def name(self) -> str:
        return f"{self.arch_name}-{self.dataset_name}"

    def describe(self) -> dict[str, Any]:
        """``{"plugin", "architecture", "dataset"}`` with names, distributions and versions, as a
        study's provenance, a trial's recipe and an export's model.json record them."""
        return {
            "plugin": self.name,
            "architecture": {"name": self.arch_name, "distribution": self.arch_dist, "version": self.arch_version},
            "dataset": {"name": self.dataset_name, "distribution": self.dataset_dist,
                        "version": self.dataset_version},
        }


def load_pair(plugin: str, reg: Registry | None = None) -> Pair:
    reg = reg or registry()
    arch_name, dataset_name = reg.split_pair(plugin)
    a_info, d_info = reg.info("architecture", arch_name), reg.info("dataset", dataset_name)
    return Pair(
        arch_name, dataset_name, reg.architecture(arch_name), reg.dataset(dataset_name),
        a_info.distribution, a_info.version, d_info.distribution, d_info.version,
    )
