"""The catalogues plugins fill: models, family builders, weight sources, remaps, architectures, executors,
runtimes.

Each is built on first use by calling its hook on every plugin, so `zoo list` never collects builders
and never imports a model library.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from zoo.plugins import get_plugins
from zoo.registry.model_registry import Catalogue, ModelRegistry
from zoo.registry.records import Architecture, ModelEntry, Remap
from zoo.registry.registry_file import read_registry_file

_cache: dict[str, object] = {}


def reset() -> None:
    _cache.clear()


class ModelRegister:
    """The `register` callback `register_models` receives: `register(entry, overrides=None)`.

    `register.entries()` lists the entries registered so far (by the plugins loaded before this one), so
    that a plugin can rewrite them, e.g. a company mirror re-registering each with `overrides=entry.plugin`.
    """

    def __init__(self, registry: ModelRegistry, plugin: str) -> None:
        self._registry, self.plugin = registry, plugin

    def __call__(self, entry: ModelEntry, overrides: str | None = None) -> None:
        if entry.plugin != self.plugin:
            entry = replace(entry, plugin=self.plugin)
        self._registry.add(entry, overrides)

    def entries(self) -> list[ModelEntry]:
        """A snapshot of the entries registered so far, in registration order."""
        return list(self._registry)


def models() -> ModelRegistry:
    """Every model entry: from plugins, then from the files named in ZOO_REGISTRY (os.pathsep-separated)."""
    if "models" not in _cache:
        registry = ModelRegistry()
        get_plugins().collect("register_models", lambda plugin: ModelRegister(registry, plugin))
        for path in filter(None, os.environ.get("ZOO_REGISTRY", "").split(os.pathsep)):
            origin = f"ZOO_REGISTRY:{Path(path).name}"
            for entry in read_registry_file(path, plugin=origin):
                registry.add(entry)
        _cache["models"] = registry
    return _cache["models"]  # type: ignore[return-value]


def _named(kind: str, hook: str, key: Callable[[object], str] | None) -> Catalogue:
    if kind not in _cache:
        catalogue: Catalogue = Catalogue(kind)

        def register_for(plugin: str):
            def register(*args, overrides: str | None = None):
                if key is None:  # register(name, item)
                    name, item = args
                else:  # register(record)
                    (item,) = args
                    name = key(item)
                    if getattr(item, "plugin", None) == "":
                        item = replace(item, plugin=plugin)
                catalogue.add(name, item, plugin, overrides)

            return register

        get_plugins().collect(hook, register_for)
        _cache[kind] = catalogue
    return _cache[kind]  # type: ignore[return-value]


def builders() -> Catalogue[Callable]:
    """Family name -> `build(entry, **kwargs)`."""
    return _named("builder", "register_builders", None)


def weight_sources() -> Catalogue:
    """URL scheme -> weight source with `open(url, offset=0)`."""
    return _named("weight source", "register_weight_sources", None)


def remaps() -> Catalogue[Remap]:
    return _named("remap", "register_remaps", lambda r: r.name)


def architectures() -> Catalogue[Architecture]:
    return _named("architecture", "register_architectures", lambda a: a.name)


def executors() -> Catalogue[Callable]:
    """Executor name -> `factory(settings)` for `zoo convert`."""
    return _named("executor", "register_executors", None)


def runtimes() -> Catalogue[Callable]:
    """Runtime name -> `runtime(path, device=..., fp16=...)` that verifies exports (`zoo export --runtime`)."""
    return _named("runtime", "register_runtimes", None)


def _all() -> tuple[tuple[str, Catalogue], ...]:
    return (
        ("models", models().entries),
        ("builders", builders()),
        ("weight sources", weight_sources()),
        ("remaps", remaps()),
        ("architectures", architectures()),
        ("executors", executors()),
        ("runtimes", runtimes()),
    )


def contributions() -> dict[str, dict[str, int]]:
    """Per plugin, how many records of each kind it contributed (loads every catalogue)."""
    counts: dict[str, dict[str, int]] = {}
    for kind, catalogue in _all():
        for name in catalogue.names():
            owner = catalogue.owner(name)
            counts.setdefault(owner, {}).setdefault(kind, 0)
            counts[owner][kind] += 1
    return counts


def overrides() -> list:
    """Every override that happened, across all catalogues."""
    return [override for _, catalogue in _all() for override in catalogue.overrides]
