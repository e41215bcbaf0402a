"""Plugin discovery and loading: built-ins, then entry points in group `zoo`, then modules in ZOO_PLUGINS.

Every load is guarded: a plugin that fails to import or register is recorded as broken (and shown by
`zoo plugins`) while the others keep working; ZOO_STRICT_PLUGINS=1 makes such a failure fatal.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from zoo import hookspecs
from zoo.entry_points import entry_points
from zoo.errors import PluginError, ZooError

ENTRY_POINT_GROUP = "zoo"
BUILTIN_PLUGINS = {
    "torchvision": "zoo_plugins.torchvision_models",
    "timm": "zoo_plugins.timm_models",
    "sources": "zoo_plugins.sources",
    "architectures": "zoo_plugins.architectures",
    "executors": "zoo_plugins.executors",
    "runtimes": "zoo_plugins.runtimes",
}


@dataclass
class PluginInfo:
    """What `zoo plugins` shows about one plugin."""

    name: str
    origin: str  # "built-in", "entry point", "ZOO_PLUGINS"
    module: str
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    contributed: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def broken(self) -> bool:
        return self.error is not None


class PluginSet:
    """A plugin manager with the zoo hook specs and a record of every plugin it tried to load."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager("zoo")
        self.manager.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def add(self, name: str, plugin: ModuleType | object, origin: str, version: str | None = None) -> None:
        """Register an already-imported plugin object under `name`, guarded like a load."""
        module = getattr(plugin, "__name__", type(plugin).__name__)
        info = PluginInfo(name, origin, module, version or getattr(plugin, "__version__", None))
        self.infos[name] = info
        try:
            self.manager.register(plugin, name=name)
            self.manager.check_pending()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must never break the host
            if self.manager.is_registered(plugin):
                self.manager.unregister(plugin)
            self._broken(info, exc)
            return
        info.hooks = sorted(impl.name for impl in self.manager.get_hookcallers(plugin) or ())

    def load(self, name: str, module: str, origin: str, version: str | None = None) -> None:
        """Import `module` and register it as plugin `name`; a failure is recorded, not raised."""
        try:
            plugin = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001
            info = PluginInfo(name, origin, module, version)
            self.infos[name] = info
            self._broken(info, exc)
            return
        self.add(name, plugin, origin, version)

    def unregister(self, name: str) -> None:
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self.infos.pop(name, None)

    def collect(self, hook_name: str, register_for: Any) -> None:
        """Call `hook_name` on each plugin in load order with `register_for(plugin_name)` as `register`.

        An exception inside one plugin's hook marks that plugin broken (fatal under ZOO_STRICT_PLUGINS=1);
        a ZooError raised by the registry itself (a duplicate name) always propagates.
        """
        caller = getattr(self.manager.hook, hook_name)
        for impl in caller.get_hookimpls():
            info = self.infos.get(impl.plugin_name)
            try:
                impl.function(register=register_for(impl.plugin_name))
            except ZooError:
                raise
            except Exception as exc:  # noqa: BLE001
                if info is None:
                    raise
                self._broken(info, exc, during=hook_name)

    def _broken(self, info: PluginInfo, exc: BaseException, during: str | None = None) -> None:
        step = f" in {during}" if during else ""
        info.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        message = f"plugin {info.name!r} ({info.module}) failed{step}: {info.error}"
        if strict_plugins():
            raise PluginError(message + " (ZOO_STRICT_PLUGINS=1 makes this fatal; unset it to skip the plugin)")
        warnings.warn(message + "; it is skipped (`zoo plugins` shows it)", RuntimeWarning, stacklevel=3)


def strict_plugins() -> bool:
    return os.environ.get("ZOO_STRICT_PLUGINS", "") not in ("", "0")


def _names(variable: str) -> list[str] | None:
    value = os.environ.get(variable)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def discover() -> PluginSet:
    """Load built-ins, entry points (narrowed by ZOO_LOAD_PLUGINS) and ZOO_PLUGINS modules, in that order."""
    plugins = PluginSet()
    for name, module in BUILTIN_PLUGINS.items():
        plugins.load(name, module, "built-in")
    wanted = _names("ZOO_LOAD_PLUGINS")
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if wanted is not None and ep.name not in wanted:
            continue
        if ep.name in plugins.infos:
            plugins.infos[f"{ep.name}!"] = PluginInfo(
                ep.name, "entry point", ep.value, error=f"plugin name {ep.name!r} is already taken"
            )
            continue
        plugins.load(ep.name, ep.value.partition(":")[0], "entry point", ep.version)
    for module in _names("ZOO_PLUGINS") or ():
        plugins.load(module, module, "ZOO_PLUGINS")
    return plugins


_current: PluginSet | None = None


def get_plugins() -> PluginSet:
    """The process-wide plugin set, discovered on first use."""
    global _current
    if _current is None:
        _current = discover()
    return _current


def reset() -> None:
    """Forget loaded plugins and everything built from them (tests and long-lived processes use this)."""
    global _current
    _current = None
    state = sys.modules.get("zoo.registry.catalogues")
    if state is not None:
        state.reset()
