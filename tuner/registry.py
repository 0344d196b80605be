"""Plugin discovery through entry points.

Listing reads entry-point metadata only; a plugin's module is imported the first time that
plugin is asked for. A plugin that fails to import or breaks the contract raises a
:class:`~tuner.errors.PluginError` naming it and its distribution; it never breaks listing or
another plugin. Builtins are found the same way: they are entry points of the ``tuner``
distribution.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any, Literal

from tuner.contract import CONTRACT_VERSION, Architecture, Dataset
from tuner.errors import PluginError, PluginNotFound, UsageError

Kind = Literal["architecture", "dataset"]
GROUPS: dict[Kind, str] = {"architecture": "tuner.architectures", "dataset": "tuner.datasets"}
_CONTRACT_TYPES: dict[Kind, type] = {"architecture": Architecture, "dataset": Dataset}


@dataclass(frozen=True)
class PluginInfo:
    """One entry point, as read from metadata (nothing imported)."""

    kind: Kind
    name: str
    target: str  # "module:attribute"
    distribution: str
    version: str


class Registry:
    """The installed plugins of both kinds."""

    def __init__(self, entries: dict[Kind, list[PluginInfo]]) -> None:
        self._entries = entries
        self._loaded: dict[tuple[Kind, str], Any] = {}

    @classmethod
    def discover(cls) -> Registry:
        """Read the entry-point metadata of every installed distribution."""
        entries: dict[Kind, list[PluginInfo]] = {}
        for kind, group in GROUPS.items():
            seen: set[tuple[str, str, str]] = set()
            infos = []
            for ep in metadata.entry_points(group=group):
                dist = getattr(ep, "dist", None)
                dist_name = dist.metadata["Name"] if dist is not None else "?"
                version = dist.version if dist is not None else "?"
                # The same distribution can sit twice on sys.path (an editable install and a
                # build folder, say): that is one plugin, not a clash.
                key = (ep.name, ep.value, dist_name)
                if key not in seen:
                    seen.add(key)
                    infos.append(PluginInfo(kind, ep.name, ep.value, dist_name, version))
            entries[kind] = sorted(infos, key=lambda i: (i.name, i.distribution))
        return cls(entries)

    def infos(self, kind: Kind) -> list[PluginInfo]:
        return list(self._entries[kind])

    def names(self, kind: Kind) -> list[str]:
        return sorted({i.name for i in self._entries[kind]})

    def info(self, kind: Kind, name: str) -> PluginInfo:
        """The single entry point called ``name``; unknown and duplicate names raise."""
        found = [i for i in self._entries[kind] if i.name == name]
        if not found:
            close = difflib.get_close_matches(name, self.names(kind), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
            raise PluginNotFound(
                f"unknown {kind} {name!r}; {hint}run `tuner plugins` to list the installed ones"
            )
        if len(found) > 1:
            owners = " and ".join(f"{i.distribution} ({i.target})" for i in found)
            raise PluginError(
                kind, name, found[0].distribution,
                f"the name is claimed by {owners}; uninstall one of them",
            )
        return found[0]

    def load(self, kind: Kind, name: str) -> Any:
        """Import and check one plugin; the result is cached."""
        key = (kind, name)
        if key not in self._loaded:
            info = self.info(kind, name)
            self._loaded[key] = _load_checked(info)
        return self._loaded[key]

    def architecture(self, name: str) -> Architecture:
        return self.load("architecture", name)

    def dataset(self, name: str) -> Dataset:
        return self.load("dataset", name)

    def split_pair(self, pair: str) -> tuple[str, str]:
        """``"tv-alexnet-mnist"`` -> ``("tv-alexnet", "mnist")``: the dataset follows the last dash."""
        arch, dash, data = pair.rpartition("-")
        if not dash or not arch or not data:
            raise UsageError(
                f"plugin {pair!r} is not <architecture>-<dataset> (e.g. lenet-digits); "
                "run `tuner plugins` to list both kinds"
            )
        self.info("architecture", arch)
        self.info("dataset", data)
        return arch, data


@cache
def registry() -> Registry:
    """The process-wide registry (entry points do not change while a process runs)."""
    return Registry.discover()


def _load_checked(info: PluginInfo) -> Any:
    """Import ``info``'s target and check it against the contract."""
    try:
        ep = metadata.EntryPoint(name=info.name, value=info.target, group=GROUPS[info.kind])
        obj = ep.load()
    except Exception as e:  # any import-time failure is the plugin's, reported as such
        raise PluginError(
            info.kind, info.name, info.distribution,
            f"failed to import {info.target}: {type(e).__name__}: {e}",
        ) from e
    check_contract(info.kind, obj, name=info.name, distribution=info.distribution)
    return obj


def check_contract(kind: Kind, obj: Any, *, name: str, distribution: str) -> None:
    """Raise :class:`PluginError` unless ``obj`` is a well-formed plugin of ``kind``.

    Checks the type, the contract version (before any field, so a plugin written for another
    version gets that message and not an ``AttributeError``) and each field's value.
    """
    expected = _CONTRACT_TYPES[kind]

    def fail(reason: str) -> PluginError:
        return PluginError(kind, name, distribution, reason)

    version = getattr(obj, "contract_version", None)
    if isinstance(version, int) and version != CONTRACT_VERSION:
        side = "a newer tuner: upgrade tuner" if version > CONTRACT_VERSION else (
            "an older tuner: update the plugin to the current contract")
        raise fail(
            f"written for plugin contract version {version}, this tuner speaks version "
            f"{CONTRACT_VERSION} ({side})"
        )
    if not isinstance(obj, expected):
        missing = [
            f.name for f in dataclasses.fields(expected)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and not hasattr(obj, f.name)
        ]
        what = f"missing field(s) {', '.join(missing)}; " if missing else ""
        raise fail(
            f"entry point must name a tuner.contract.{expected.__name__}, got "
            f"{type(obj).__name__}; {what}see docs/plugins.md"
        )
    problems = _architecture_problems(obj) if kind == "architecture" else _dataset_problems(obj)
    if problems:
        raise fail("; ".join(problems))


def _architecture_problems(arch: Architecture) -> list[str]:
    problems = []
    if not callable(arch.build):
        problems.append("field 'build' must be callable as build(shape, hp) -> nn.Module")
    if arch.input_size is not None and (
        len(arch.input_size) != 2 or min(arch.input_size) < 1
    ):
        problems.append(f"field 'input_size' must be (height, width), got {arch.input_size!r}")
    if arch.reference is not None:
        try:
            arch.reference.validate()
        except (ValueError, AttributeError) as e:
            problems.append(f"field 'reference': {e}")
    return problems


def _dataset_problems(ds: Dataset) -> list[str]:
    problems = []
    if not callable(ds.load):
        problems.append("field 'load' must be callable as load(request) -> Splits")
    if not (isinstance(ds.channels, int) and ds.channels >= 1):
        problems.append(f"field 'channels' must be a positive int, got {ds.channels!r}")
    if len(ds.image_size) != 2 or min(ds.image_size) < 1:
        problems.append(f"field 'image_size' must be (height, width), got {ds.image_size!r}")
    if len(ds.class_names) < 2:
        problems.append(f"field 'class_names' needs at least 2 classes, got {len(ds.class_names)}")
    for field_name in ("mean", "std"):
        values = getattr(ds, field_name)
        if len(values) != ds.channels:
            problems.append(
                f"field {field_name!r} needs one value per channel ({ds.channels}), "
                f"got {len(values)}"
            )
    if any(s <= 0 for s in ds.std):
        problems.append("field 'std' must be positive")
    return problems
