"""The search space: defaults, plugin narrowing, user overrides, the reference trial's params."""

from __future__ import annotations

import optuna
import pytest

from tuner.contract import Choice, Fixed, FloatRange, IntRange
from tuner.errors import UsageError
from tuner.plugins.registry import registry
from tuner.search import (
    build_space,
    fixed_params_for,
    hyperparameters,
    parse_entry,
    parse_toml,
    sample,
    sample_reference,
)
from tuner.testing import reference_outside_space


def test_parse_entries():
    assert parse_entry("lr=1e-5:1e-1:log") == ("lr", FloatRange(1e-5, 0.1, log=True))
    assert parse_entry("batch_size=32,64") == ("batch_size", Choice((32, 64)))
    assert parse_entry("plateau_patience=0:4") == ("plateau_patience", IntRange(0, 4))
    assert parse_entry("optimizer=adam") == ("optimizer", Fixed("adam"))


@pytest.mark.parametrize("entry", ["lr=1:0.1", "lr=0:1:log", "batch_size=0:8", "dropout=0.1:1.5",
                                   "lr=a:b", "optimizer=rmsprop", "plateau_patience=0.5:2", "lr=1:2:lin",
                                   "lr=abc", "batch_size=3.5", "dropout=true", "scheduler=1", "momentum=0.9,x"])
def test_impossible_entries_are_refused(entry):
    with pytest.raises(UsageError):
        parse_entry(entry)


def test_toml_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[space]\nlr = {low = 1e-4, high = 1e-2, log = true}\nbatch_size = [32, 64]\n'
                    'dropout = 0.25\n')
    assert parse_toml(path) == {"lr": FloatRange(1e-4, 1e-2, log=True), "batch_size": Choice((32, 64)),
                                "dropout": Fixed(0.25)}
    path.write_text("lr = {low = 1")
    with pytest.raises(UsageError, match="not valid TOML"):
        parse_toml(path)


def test_plugin_narrows_and_extends_the_default_space():
    alexnet = registry().architecture("alexnet")
    space = build_space(alexnet)
    assert space["lr"] == FloatRange(1e-5, 1e-2, log=True) and "dropout2" in space and "dropout" in space
    assert "dropout" not in build_space(registry().architecture("lenet"))
    assert "width" in build_space(registry().architecture("netwidth"))
    user = build_space(alexnet, {"lr": FloatRange(1e-4, 1e-3)})
    assert user["lr"] == FloatRange(1e-4, 1e-3)


@pytest.mark.parametrize("name", sorted(registry().names("architecture")))
def test_reference_trial_samples_exactly_the_reference(name):
    arch = registry().architecture(name)
    space = build_space(arch)
    assert not reference_outside_space(arch)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(fixed_params_for(arch.reference, space))
    trial = study.ask()
    values = sample_reference(trial, space, arch.reference)
    expected = arch.reference.as_dict()
    assert {"lr", "batch_size", "optimizer", "weight_decay"} <= set(values)
    for key, value in values.items():
        assert value == expected[key], key
    assert hyperparameters(values).lr == arch.reference.lr


def test_weight_decay_can_be_exactly_zero():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = {"weight_decay": FloatRange(1e-6, 1e-2, log=True, or_zero=True)}
    seen = {sample(study.ask(), space)["weight_decay"] == 0 for _ in range(40)}
    assert seen == {True, False}
