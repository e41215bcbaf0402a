"""`zoo plugins new`: write a ready-to-install plugin package from the templates in zoo/plugin_template.py."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from string import Template

from zoo.errors import UserInputError

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin name gives: distribution, import package, entry point (= plugin), URL scheme."""

    distribution: str  # zoo-acme-models
    module: str  # zoo_acme_models
    plugin: str  # acme_models: the entry-point name, the model family
    scheme: str  # acme-models: the weight source's URL scheme

    @classmethod
    def from_name(cls, name: str) -> PluginNames:
        if not _NAME.fullmatch(name):
            raise UserInputError(
                f"{name!r} is not a plugin name: use letters, digits, '-' and '_', starting with a letter (e.g. acme)"
            )
        slug = name.lower().replace("_", "-").removeprefix("zoo-") or "plugin"
        return cls(f"zoo-{slug}", f"zoo_{slug.replace('-', '_')}", slug.replace("-", "_"), slug)

    def substitutions(self) -> dict[str, str]:
        from zoo import __version__

        return {
            "distribution": self.distribution,
            "module": self.module,
            "plugin": self.plugin,
            "scheme": self.scheme,
            "env": f"{self.plugin.upper()}_WEIGHTS_DIR",
            "model": f"{self.plugin}_tinynet",
            "remap": f"{self.plugin}_upstream_names",
            "zoo_requirement": f"zoo>={'.'.join(__version__.split('.')[:2])}",
        }


@dataclass(frozen=True)
class Scaffold:
    """What `write_plugin` wrote."""

    names: PluginNames
    path: Path
    files: tuple[str, ...]


def render(names: PluginNames) -> dict[str, str]:
    """Relative path -> file content for the plugin `names` describes."""
    from zoo.plugin_template import TEMPLATES

    values = names.substitutions()
    return {
        Template(path).substitute(values): Template(text).substitute(values).lstrip("\n")
        for path, text in TEMPLATES.items()
    }


def write_plugin(name: str, directory: Path | str = ".") -> Scaffold:
    """Write the plugin package `zoo-<name>` into `directory`; the directory appears complete or not at all."""
    names = PluginNames.from_name(name)
    parent = Path(directory)
    target = parent / names.distribution
    if target.exists():
        raise UserInputError(f"{target} already exists; choose another name or --dir, or remove it")
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{names.distribution}.{os.getpid()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    files = render(names)
    try:
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Scaffold(names, target, tuple(sorted(files)))
