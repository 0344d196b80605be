"""The builtin plugins pass the same conformance kit that plugin authors run."""

from __future__ import annotations

import pytest

from tuner.plugins.registry import registry
from tuner.testing import DEFAULT_SHAPES, ArchitectureConformance, DatasetConformance, check_architecture

_SMALL = [n for n in registry().names("architecture") if "alexnet" not in n]


@pytest.mark.parametrize("name", registry().names("architecture"))
def test_builtin_architecture_passes_the_kit(name):
    shapes = None if name in _SMALL else DEFAULT_SHAPES[:1]  # AlexNets: 224×224 is slow
    suite = type("Suite", (ArchitectureConformance,), {"plugin": name, **({"shapes": shapes} if shapes else {})})()
    for test in [m for m in dir(suite) if m.startswith("test_")]:
        getattr(suite, test)()


class TestDigits(DatasetConformance):
    plugin = "digits"


class TestLenet(ArchitectureConformance):
    plugin = "lenet"


def test_the_kit_catches_a_wrong_output_width(broken_plugins, on_sys_path):
    from tuner.errors import PluginError

    on_sys_path(broken_plugins)
    with pytest.raises(PluginError, match="output must be"):
        check_architecture("wrongwidth")
