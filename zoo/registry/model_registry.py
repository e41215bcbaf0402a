"""The registry: what plugins contributed, with duplicate checks, look-up, patterns and suggestions."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from zoo.errors import DuplicateError, UnknownModelError
from zoo.registry.records import ModelEntry, Selection

T = TypeVar("T")


@dataclass(frozen=True)
class Override:
    """A record of one plugin replacing what another registered under the same name."""

    kind: str
    name: str
    winner: str
    loser: str


class Catalogue(Generic[T]):
    """Things of one kind registered by name, each with its plugin; duplicates raise unless declared overrides."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._owners: dict[str, str] = {}
        self._claims: dict[str, str] = {}  # name -> plugin it declared to override
        self.overrides: list[Override] = []

    def add(self, name: str, item: T, plugin: str, overrides: str | None = None) -> None:
        """Register `item` as `name`; `overrides` names the plugin whose record this one replaces."""
        if name not in self._items:
            self._items[name], self._owners[name] = item, plugin
            if overrides:
                self._claims[name] = overrides
            return
        owner = self._owners[name]
        if overrides and overrides == owner:
            self._items[name], self._owners[name], self._claims[name] = item, plugin, overrides
            self.overrides.append(Override(self.kind, name, plugin, owner))
        elif self._claims.get(name) == plugin:
            self.overrides.append(Override(self.kind, name, owner, plugin))
        else:
            raise DuplicateError(
                f"{self.kind} {name!r} is registered by both plugin {owner!r} and plugin {plugin!r}; "
                f"uninstall one, or declare overrides={owner!r} in {plugin!r}"
            )

    def get(self, name: str) -> T | None:
        return self._items.get(name)

    def owner(self, name: str) -> str:
        return self._owners[name]

    def names(self) -> list[str]:
        return list(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


class ModelRegistry:
    """Model entries by `family:name`, found by name, alias, `name.tag`, `family:name` or fnmatch pattern."""

    def __init__(self) -> None:
        self.entries: Catalogue[ModelEntry] = Catalogue("model")

    def add(self, entry: ModelEntry, overrides: str | None = None) -> None:
        self.entries.add(entry.qualified_name, entry, entry.plugin, overrides)

    def __iter__(self):
        return (entry for _, entry in self.entries.items())

    def __len__(self) -> int:
        return len(self.entries)

    def families(self) -> list[str]:
        return list(dict.fromkeys(entry.family for entry in self))

    def get_entry(self, name: str) -> ModelEntry:
        """The entry for a model name or alias, with or without `family:`; a `.tag` suffix is ignored."""
        return self.resolve(name).entry

    def resolve(self, spec: str) -> Selection:
        """Resolve `[family:]name[.tag]` (names and tags may be aliases) to a model and weight set."""
        family, _, rest = spec.rpartition(":")
        name, dot, tag = rest.partition(".")
        candidates = [e for e in self if (not family or e.family == family) and (e.name == name or name in e.aliases)]
        if not candidates:
            raise UnknownModelError(self._unknown_message(spec, family))
        entry = next((e for e in candidates if e.name == name), candidates[0])
        if not dot:
            return Selection(entry, entry.default_weights)
        weights = entry.weight_set(tag)
        if weights is None:
            tags = ", ".join(w.tag for w in entry.weights) or "none"
            raise UnknownModelError(f"{entry.qualified_name} has no weight set {tag!r} (it has: {tags})")
        return Selection(entry, weights)

    def select(
        self,
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        family: str | None = None,
        pretrained: bool = False,
    ) -> list[ModelEntry]:
        """Entries whose name (or `family:name`) matches any include pattern and no exclude pattern."""
        include, exclude = list(include), list(exclude)

        def matches(entry: ModelEntry, patterns: list[str]) -> bool:
            keys = (entry.name, entry.qualified_name, *entry.aliases)
            return any(fnmatch.fnmatchcase(key, p) for key in keys for p in patterns)

        return [
            e
            for e in self
            if (not include or matches(e, include))
            and not matches(e, exclude)
            and (family is None or e.family == family)
            and (not pretrained or e.weights)
        ]

    def suggest(self, name: str, count: int = 3) -> list[str]:
        """The `count` registered names closest to `name`."""
        known = {key for e in self for key in (e.name, *e.aliases)}
        return difflib.get_close_matches(name, sorted(known), n=count, cutoff=0.0)

    def _unknown_message(self, spec: str, family: str) -> str:
        if family and family not in self.families():
            return f"unknown family {family!r} in {spec!r}; families: {', '.join(self.families()) or 'none'}"
        close = self.suggest(spec.rpartition(":")[2].partition(".")[0])
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown model {spec!r}{hint} (`zoo list` shows every model)"
