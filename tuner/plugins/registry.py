"""Plugin discovery through entry points: listed from metadata, imported when first used.

Listing reads entry-point metadata only; a plugin's module is imported the first time that
plugin is asked for. A plugin that fails to import or breaks the contract raises a
:class:`~tuner.errors.PluginError` naming it and its distribution; it never breaks listing or
another plugin. Builtins are found the same way: they are entry points of the ``tuner``
distribution.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

from tuner.contract import Architecture, Dataset
from tuner.errors import PluginError, PluginNotFound, UsageError
from tuner.plugins.checks import Kind, check_contract

GROUPS: dict[Kind, str] = {"architecture": "tuner.architectures", "dataset": "tuner.datasets"}


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
