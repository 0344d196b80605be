"""Conformance kit: the checks ``tuner`` runs on a plugin, for the plugin author's own tests.

One import, then a subclass per plugin; pytest collects the inherited tests::

    from tuner.testing import ArchitectureConformance, DatasetConformance

    class TestMyNet(ArchitectureConformance):
        plugin = "mynet"            # the entry-point name

    class TestMyData(DatasetConformance):
        plugin = "mydata"
        data_dir = "tests/data"     # where load() finds its files

The same checks are plain functions (:func:`check_architecture`, :func:`check_dataset`) for
other test runners. The builtin plugins pass this kit in ``tuner``'s own test suite.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from tuner.contract import Architecture, DataRequest, Dataset, Fixed, FloatRange, ImageShape, IntRange, Splits
from tuner.data.loading import load_splits
from tuner.data.prepared import fit_shape, normalize
from tuner.errors import PairRefused
from tuner.plugins.checks import StepReport, build_model, default_hyperparameters, one_step, splits_problems
from tuner.plugins.registry import registry
from tuner.search.space import applies, build_space

__all__ = [
    "DEFAULT_SHAPES",
    "ArchitectureConformance",
    "DatasetConformance",
    "check_architecture",
    "check_dataset",
    "reference_outside_space",
]

#: The image shapes of the builtin datasets (MNIST/digits, CIFAR-10, CIFAR-2) and one odd one.
DEFAULT_SHAPES = (
    ImageShape(1, 28, 28, 10),
    ImageShape(3, 32, 32, 10),
    ImageShape(3, 32, 32, 2),
    ImageShape(2, 40, 36, 7),
)


def _info(kind: str, name: str) -> tuple[object, str]:
    reg = registry()
    return reg.load(kind, name), reg.info(kind, name).distribution


def check_architecture(name: str, shapes: tuple[ImageShape, ...] = DEFAULT_SHAPES) -> list[StepReport]:
    """Load architecture ``name`` through the registry and, for each shape it accepts, build it
    and train one batch, checking the output width against the class count. Returns the
    reports (a refused shape has none). Raises ``AssertionError`` or a ``TunerError`` naming
    what is wrong."""
    arch, dist = _info("architecture", name)
    hp = default_hyperparameters(arch)
    reports = []
    for raw in shapes:
        shape = fit_shape(arch, raw)
        try:
            model = build_model(arch, shape, hp, name=name, distribution=dist)
        except PairRefused as e:
            assert str(e), f"{name} refused {shape} without a reason"
            continue
        x = torch.randn(3, shape.channels, shape.height, shape.width)
        y = torch.randint(0, shape.num_classes, (3,))
        reports.append(one_step(model, x, y, shape, name=name, distribution=dist))
    assert reports, f"{name} refused every shape it was offered: {shapes}"
    return reports


def reference_outside_space(arch: Architecture) -> dict[str, object]:
    """Reference values that the architecture's own search space cannot produce."""
    if arch.reference is None:
        return {}
    values = arch.reference.as_dict()
    space = build_space(arch)
    return {
        name: values[name] for name, param in space.items()
        if name in values and applies(name, values) and not isinstance(param, Fixed)
        and not param.contains(values[name])
    }


def check_dataset(name: str, data_dir: str | Path) -> Splits:
    """Load dataset ``name`` from ``data_dir`` and check its splits against its declaration."""
    dataset, dist = _info("dataset", name)
    splits = dataset.load(DataRequest(data_dir=Path(data_dir), download=False))
    problems = splits_problems(dataset, splits)
    assert not problems, f"dataset {name!r} (from {dist}): " + "; ".join(problems)
    return splits


class ArchitectureConformance:
    """Subclass as ``TestSomething`` and set ``plugin`` to the architecture's entry-point name."""

    plugin: str = ""
    shapes: tuple[ImageShape, ...] = DEFAULT_SHAPES

    def _arch(self) -> Architecture:
        assert self.plugin, "set `plugin = '<entry-point name>'` on the test class"
        arch, _ = _info("architecture", self.plugin)
        return arch

    def test_loads_through_its_entry_point(self) -> None:
        assert isinstance(self._arch(), Architecture)

    def test_builds_and_trains_one_batch_for_each_shape(self) -> None:
        for report in check_architecture(self.plugin, self.shapes):
            assert report.parameters > 0

    def test_reference_lies_inside_the_search_space(self) -> None:
        outside = reference_outside_space(self._arch())
        assert not outside, (
            f"reference values outside the search space of {self.plugin}: {outside}; widen the "
            "architecture's search_space so the tuner can reach (and beat) them"
        )

    def test_dropout_probability_is_used(self) -> None:
        arch = self._arch()
        if not arch.has_dropout:
            return
        shape = fit_shape(arch, self.shapes[0])
        hp = dataclasses.replace(default_hyperparameters(arch), dropout=0.123)
        model = arch.build(shape, hp)
        probabilities = [m.p for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        assert 0.123 in probabilities, (
            f"{self.plugin} declares has_dropout but build() ignored hp.dropout (saw {probabilities})"
        )

    def test_own_hyperparameters_reach_build(self) -> None:
        arch = self._arch()
        shape = fit_shape(arch, self.shapes[0])
        base = default_hyperparameters(arch)
        for name, param in arch.search_space.items():
            if not isinstance(param, FloatRange | IntRange) or name in base.as_dict():
                continue
            for value in (param.low, param.high):
                hp = dataclasses.replace(base, extra={**base.extra, name: value})
                assert isinstance(arch.build(shape, hp), nn.Module)


class DatasetConformance:
    """Subclass as ``TestSomething``; set ``plugin`` and ``data_dir`` (where its files are)."""

    plugin: str = ""
    data_dir: str | Path = "."

    def _dataset(self) -> Dataset:
        assert self.plugin, "set `plugin = '<entry-point name>'` on the test class"
        dataset, _ = _info("dataset", self.plugin)
        return dataset

    def test_loads_through_its_entry_point(self) -> None:
        assert isinstance(self._dataset(), Dataset)

    def test_splits_have_the_declared_shapes_and_labels(self) -> None:
        splits = check_dataset(self.plugin, self.data_dir)
        assert len(splits.train_labels) > 1

    def test_normalisation_is_roughly_standard(self) -> None:
        dataset = self._dataset()
        _, dist = _info("dataset", self.plugin)
        splits = load_splits(self.plugin, dataset, Path(self.data_dir), dist)
        x = normalize(splits.train_images[:2000], dataset)
        mean, std = x.mean().item(), x.std().item()
        assert abs(mean) < 1.0 and 0.3 < std < 3.0, (
            f"after normalisation {self.plugin} has mean {mean:.2f} and std {std:.2f}; "
            "are `mean` and `std` the per-channel statistics of images scaled to [0, 1]?"
        )

    def test_trains_with_a_builtin_architecture(self) -> None:
        dataset = self._dataset()
        _, dist = _info("dataset", self.plugin)
        splits = load_splits(self.plugin, dataset, Path(self.data_dir), dist)
        shape = ImageShape(dataset.channels, *dataset.image_size, dataset.num_classes)
        mlp, _ = _info("architecture", "mlp")
        model = mlp.build(shape, default_hyperparameters(mlp))
        x = normalize(splits.train_images[:4], dataset)
        one_step(model, x, splits.train_labels[:4], shape, name="mlp", distribution="tuner")
