"""The builtin models are the seed posts' models, with the seeds' settings as references."""

from __future__ import annotations

import pytest
import torch
from helpers import run_tuner
from torch import nn

from tuner.contract import Hyperparameters, ImageShape
from tuner.plugins.registry import registry

MNIST_224 = ImageShape(1, 224, 224, 10)


def build(name: str, shape: ImageShape, **hp) -> nn.Module:
    arch = registry().architecture(name)
    return arch.build(shape, Hyperparameters(**{"lr": 1e-3, "batch_size": 8, **hp}))


def test_alexnet_is_seed_000s_variant():
    model = build("alexnet", MNIST_224)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (1, 96, 11, 4), (96, 256, 5, 1), (256, 384, 3, 1), (384, 384, 3, 1), (384, 256, 3, 1)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(9216, 4096), (4096, 4096), (4096, 10)]
    ref = registry().architecture("alexnet").reference
    assert (ref.optimizer, ref.lr, ref.weight_decay, ref.batch_size) == ("adam", 1e-4, 1e-5, 1000)
    assert (ref.plateau_factor, ref.plateau_patience, ref.plateau_threshold, ref.plateau_min_lr) == (
        0.5, 1, 1e-3, 2e-5)
    dropouts = [m.p for m in build("alexnet", MNIST_224, dropout=0.25, extra={"dropout2": 0.1}).modules()
                if isinstance(m, nn.Dropout)]
    assert dropouts == [0.25, 0.1]


def test_seed_004_nets_apply_conv2_and_take_their_width():
    for name in ("netwidth", "netdropout", "netbatchnorm"):
        model = build(name, ImageShape(3, 32, 32, 2), extra={"width": 32}).eval()
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert [(c.in_channels, c.out_channels) for c in convs] == [(3, 32), (32, 16)]
        x = torch.randn(2, 3, 32, 32)
        before = model(x)
        with torch.no_grad():
            convs[1].weight.zero_()
        assert not torch.allclose(before, model(x)), f"{name} does not use conv2"
    net = build("net", ImageShape(3, 32, 32, 2))
    assert [m.in_features for m in net.modules() if isinstance(m, nn.Linear)] == [512, 32]
    assert registry().architecture("netbatchnorm").reference.weight_decay == 0.002  # L2 0.001·Σw²


def test_mlps_and_lenet_match_the_posts():
    mlp = build("mlp", ImageShape(1, 28, 28, 10))
    assert [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)] == [300, 100, 10]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in mlp.modules()) == 2
    sig = build("sigmoid-mlp", ImageShape(1, 28, 28, 10))
    assert [m.out_features for m in sig.modules() if isinstance(m, nn.Linear)] == [128, 256, 128, 64, 10]
    lenet = build("lenet", ImageShape(3, 32, 32, 10))
    assert [m.in_features for m in lenet.modules() if isinstance(m, nn.Linear)] == [400, 120, 84]
    assert registry().architecture("sigmoid-mlp").reference.lr == 0.0045


def test_tv_alexnet_loads_a_local_imagenet_checkpoint(tmp_path, monkeypatch):
    from torchvision.models import alexnet

    checkpoint = alexnet(weights=None).state_dict()  # the layout of torchvision's ImageNet file
    path = tmp_path / "alexnet-owt.pth"
    torch.save(checkpoint, path)
    monkeypatch.setenv("TUNER_TV_ALEXNET_WEIGHTS", str(path))
    model = build("tv-alexnet", MNIST_224, dropout=0.5)
    state = model.state_dict()
    assert torch.equal(state["features.3.weight"], checkpoint["features.3.weight"])
    expected_first = checkpoint["features.0.weight"].sum(1, keepdim=True)
    assert torch.allclose(state["features.0.weight"], expected_first)
    assert state["classifier.6.weight"].shape == (10, 4096)  # a new head for 10 classes


@pytest.mark.slow
def test_tv_alexnet_says_which_it_did(tmp_path):
    proc = run_tuner("plugins", "--check", "tv-alexnet-digits", cwd=tmp_path, check=True)
    assert "training from scratch" in proc.stderr and "TUNER_TV_ALEXNET_WEIGHTS" in proc.stderr
