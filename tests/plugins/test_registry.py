"""Plugin discovery: builtins through entry points, third-party packages, broken ones, clashes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from helpers import one_error_line, pythonpath, run_tuner, write_cifar10

from tuner.contract import Architecture, Dataset
from tuner.errors import PairRefused, PluginError, PluginNotFound, UsageError
from tuner.planning import contract_step
from tuner.plugins import PluginInfo, Registry, load_pair
from tuner.plugins.registry import registry

BUILTIN_ARCHITECTURES = {"alexnet", "tv-alexnet", "mlp", "sigmoid-mlp", "cnnnet", "lenet", "net",
                         "netwidth", "netdropout", "netbatchnorm"}
BUILTIN_DATASETS = {"mnist", "cifar10", "cifar2", "digits"}


def test_every_seed_system_is_a_builtin_plugin_of_the_tuner_distribution():
    reg = registry()
    assert set(reg.names("architecture")) >= BUILTIN_ARCHITECTURES
    assert set(reg.names("dataset")) >= BUILTIN_DATASETS
    for kind in ("architecture", "dataset"):
        for info in reg.infos(kind):
            if info.name in BUILTIN_ARCHITECTURES | BUILTIN_DATASETS:
                assert info.distribution == "tuner"
                assert info.target.startswith("tuner_plugins.")


def test_plugins_folder_is_not_importable_as_bare_plugins():
    import importlib.util

    assert importlib.util.find_spec("tuner_plugins") is not None
    spec = importlib.util.find_spec("plugins")
    assert spec is None or "tuner" not in str(spec.origin or "")


def test_listing_imports_no_plugin_module():
    import subprocess
    import sys

    code = ("import sys; from tuner.plugins.registry import Registry; r = Registry.discover(); "
            "r.names('architecture'); print(any(m.startswith('tuner_plugins') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """digits needs nothing; CIFAR and MNIST are small files written in their official formats
    (the real MNIST goes through the loader in test_data.py)."""
    from helpers import write_mnist

    root = tmp_path_factory.mktemp("data")
    write_cifar10(root, per_batch=8)
    return write_mnist(root, train=20, test=10)


@pytest.mark.parametrize("dataset", sorted(BUILTIN_DATASETS))
@pytest.mark.parametrize("arch", sorted(BUILTIN_ARCHITECTURES))
def test_every_builtin_pair_trains_one_step_or_gives_a_reason(arch, dataset, data_root):
    pair = load_pair(f"{arch}-{dataset}")
    try:
        report = contract_step(pair, data_root)
    except PairRefused as e:
        assert str(e)  # a refusal always says why
        return
    assert report.output_shape[1] == pair.dataset.num_classes
    expected_size = pair.arch.input_size or pair.dataset.image_size
    assert report.input_shape[1:] == (pair.dataset.channels, *expected_size)


def test_dataset_is_the_part_after_the_last_dash():
    assert registry().split_pair("tv-alexnet-mnist") == ("tv-alexnet", "mnist")
    assert registry().split_pair("sigmoid-mlp-digits") == ("sigmoid-mlp", "digits")
    with pytest.raises(UsageError):
        registry().split_pair("lenet")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(PluginNotFound, match="did you mean 'alexnet'"):
        registry().split_pair("alexnt-mnist")
    with pytest.raises(PluginNotFound, match="did you mean 'mnist'"):
        registry().split_pair("lenet-mnst")


def test_two_distributions_claiming_one_name_is_an_error_naming_both():
    reg = Registry({
        "architecture": [PluginInfo("lenet", "lenet", "a.m:x", "dist-a", "1"),
                         PluginInfo("lenet", "lenet", "b.m:x", "dist-b", "2")],
        "dataset": [],
    })
    with pytest.raises(PluginError, match=r"dist-a.*dist-b"):
        reg.architecture("lenet")


@pytest.mark.slow
def test_cli_duplicate_name_from_an_installed_package(dup_plugins, tmp_path):
    proc = run_tuner("plugins", "--check", "lenet-digits", cwd=tmp_path, env=pythonpath(dup_plugins))
    line = one_error_line(proc)
    assert "tuner" in line and "tuner-dup-plugins" in line
    # The clash is listed, not fatal to the listing.
    listing = run_tuner("plugins", cwd=tmp_path, env=pythonpath(dup_plugins), check=True)
    assert "mlp" in listing.stdout and "claimed by" in listing.stdout


@pytest.mark.slow
def test_third_party_package_is_discovered_and_pairs_with_builtins(demo_plugins, tmp_path):
    env = pythonpath(demo_plugins)
    listing = run_tuner("plugins", cwd=tmp_path, env=env, check=True)
    assert "tinynet" in listing.stdout and "tuner-demo-plugins" in listing.stdout
    assert "1.2.3" in listing.stdout and "digits8" in listing.stdout
    for pair in ("tinynet-digits", "mlp-digits8", "tinynet-digits8"):
        proc = run_tuner("plugins", "--check", pair, cwd=tmp_path, env=env, check=True)
        assert "ok" in proc.stdout and "parameters" in proc.stdout
        # and what it costs: a step of the pair's own batch size, an epoch of its own data split
        assert re.search(r"on the cpu: [\d.]+ s a step of \d+ images.* · [\d.]+ (s|min) an epoch of [\d,]+ "
                         r"training and [\d,]+ validation images", " ".join(proc.stdout.split())), proc.stdout
    refused = one_error_line(run_tuner("plugins", "--check", "lenet-digits8", cwd=tmp_path, env=env))
    assert "lenet cannot take digits8" in refused and "12×12" in refused and "8×8" in refused


@pytest.mark.slow
def test_broken_plugins_are_listed_with_their_error_and_do_not_stop_others(broken_plugins, demo_plugins,
                                                                           tmp_path):
    env = pythonpath(broken_plugins, demo_plugins)
    listing = run_tuner("plugins", cwd=tmp_path, env=env, check=True)
    out = " ".join(listing.stdout.split())
    assert "importfail" in out and "ModuleNotFoundError" in out
    assert "tinynet" in out and "lenet" in out  # the good ones still listed
    assert run_tuner("plugins", "--check", "tinynet-digits", cwd=tmp_path, env=env).returncode == 0
    listed = json.loads(run_tuner("plugins", "--json", cwd=tmp_path, env=env, check=True).stdout)
    archs = {a["name"]: a for a in listed["architectures"]}
    assert "ModuleNotFoundError" in archs["importfail"]["error"] and archs["importfail"]["description"] is None
    assert archs["lenet"]["error"] is None and archs["lenet"]["distribution"] == "tuner"
    assert archs["tinynet"]["description"] and {d["name"] for d in listed["datasets"]} >= {"mnist", "digits"}


@pytest.mark.parametrize("pair, expected", [
    ("importfail-digits", "architecture plugin 'importfail' (from tuner-broken-plugins): failed to import"),
    ("missingtarget-digits", "failed to import tuner_broken.mistakes:no_such_attribute"),
    ("notaplugin-digits", "must name a tuner.contract.Architecture, got function"),
    ("halfnet-digits", "missing field(s) description"),
    ("futurenet-digits", "contract version 99"),
    ("wrongwidth-digits", "output must be (batch, 10) logits for 10 classes, got (2, 7)"),
    ("mlp-badlabels", "train_labels must lie in 0..9, got 0..11"),
])
def test_each_kind_of_plugin_mistake_gets_a_clear_message(pair, expected, broken_plugins, tmp_path):
    line = one_error_line(run_tuner("plugins", "--check", pair, cwd=tmp_path,
                                    env=pythonpath(broken_plugins)))
    assert expected in line
    assert "tuner-broken-plugins" in line


def test_in_process_registry_sees_installed_packages(on_sys_path, demo_plugins):
    on_sys_path(demo_plugins)
    reg = registry()
    assert isinstance(reg.architecture("tinynet"), Architecture)
    assert isinstance(reg.dataset("digits8"), Dataset)
    model = reg.architecture("tinynet").build(
        __import__("tuner.contract").contract.ImageShape(1, 8, 8, 10),
        reg.architecture("tinynet").reference)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
