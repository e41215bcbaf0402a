"""The registry: what plugins contributed, with duplicate checks, look-up, patterns and suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar
from urllib.parse import unquote

from zoo.errors import DuplicateError, UnknownModelError, UserInputError
from zoo.registry.records import ModelEntry, Selection, WeightSet, hash_prefix_from_file_name

T = TypeVar("T")


class MisnamedFileError(UserInputError):
    """A file's name says it is a known weight set's file (e.g. `resnet18-5c106cde.pth`) but its content differs."""


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
        # file name -> (entry, weights, legacy URL or None) of each weight set it is the file of; built when asked
        self._files: dict[str, list[tuple[ModelEntry, WeightSet, str | None]]] | None = None

    def add(self, entry: ModelEntry, overrides: str | None = None) -> None:
        self.entries.add(entry.qualified_name, entry, entry.plugin, overrides)
        self._files = None

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
        """Entries whose name, `family:name`, alias or `name.tag` matches an include pattern and no exclude one.

        zoo.registry.query has the filters, sorting and the per-weight-set view (`zoo list`, `list_models`).
        """
        from zoo.registry.query import Query, select_models

        query = Query(tuple(include), tuple(exclude), family=family, pretrained=pretrained)
        return [row.entry for row in select_models(self, query)]

    def find_file(self, file_name: str) -> Selection | None:
        """The weight set whose file is named `file_name`, today's or a legacy one; None if none is.

        A legacy file (`resnet18-5c106cde.pth`, a URL in a weight set's `legacy_urls`) comes back as that
        weight set with the legacy URL, file name and hash prefix: fetch, import, inspect and the torch hub
        cache take it like any weight set.
        """
        found = self._file_index().get(file_name)
        return _selection(*found[0]) if found else None

    def _file_index(self) -> dict[str, list[tuple[ModelEntry, WeightSet, str | None]]]:
        """File name -> the weight sets it is the file of (two when timm publishes one file for both)."""
        if self._files is None:
            files: dict[str, list[tuple[ModelEntry, WeightSet, str | None]]] = {}
            for entry in self:
                for weights in entry.weights:
                    files.setdefault(weights.file_name, []).append((entry, weights, None))
                    for url in weights.legacy_urls:  # the name as a key only: the record checks it when built
                        files.setdefault(unquote(url.rsplit("/", 1)[-1]), []).append((entry, weights, url))
            self._files = files
        return self._files

    def find_by_hash(self, sha256: str) -> list[Selection]:
        """Every weight set, or legacy file of one, whose sha256 (or file-name hash prefix) `sha256` matches."""
        sha256 = sha256.lower()
        found = []
        for name, files in self._file_index().items():
            for entry, weights, legacy_url in files:
                expected = weights.expected_hash if legacy_url is None else hash_prefix_from_file_name(name)
                if expected and sha256.startswith(expected):
                    found.append(_selection(entry, weights, legacy_url))
        return found

    def check_file(self, file_name: str, sha256: str) -> Selection | None:
        """The weight set a file's name claims it is, if its content agrees; None when the name claims none.

        Raises MisnamedFileError naming the weight set and both hashes when the content differs.
        """
        selection = self.find_file(file_name)
        if selection is None or selection.weights is None:
            return None
        weights = selection.weights
        expected = weights.expected_hash
        if expected and not sha256.lower().startswith(expected):
            what = "a legacy file of" if "legacy_of" in weights.meta else "the file of"
            kind = "sha256" if weights.sha256 else "sha256 prefix"
            raise MisnamedFileError(
                f"{file_name} is named as {what} {selection.entry.qualified_name}.{weights.tag} ({kind} {expected}), "
                f"but its content has sha256 {sha256}: it is not that file (damaged, or another file renamed); "
                "refused"
            )
        return selection

    def suggest(self, name: str, count: int = 3) -> list[str]:
        """The `count` registered names closest to `name`."""
        known = sorted({key for e in self for key in (e.name, *e.aliases)})
        # a cutoff lets difflib skip most of ~1,500 names quickly; with none that close, the closest at all
        close = difflib.get_close_matches(name, known, n=count, cutoff=0.6)
        return close or difflib.get_close_matches(name, known, n=count, cutoff=0.0)

    def _unknown_message(self, spec: str, family: str) -> str:
        if family and family not in self.families():
            return f"unknown family {family!r} in {spec!r}; families: {', '.join(self.families()) or 'none'}"
        close = self.suggest(spec.rpartition(":")[2].partition(".")[0])
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown model {spec!r}{hint} (`zoo list` shows every model)"


def legacy_weights(weights: WeightSet, url: str) -> WeightSet:
    """`weights` as its legacy file at `url`: that URL, its file name and the hash prefix the name carries."""
    return replace(
        weights,
        url=url,
        file_name="",
        mirrors=(),
        legacy_urls=(),
        sha256=None,
        hash_prefix=None,
        size=None,
        format="pth" if not url.endswith(".safetensors") else "safetensors",
        meta={**weights.meta, "legacy_of": weights.url},
    )


def _selection(entry: ModelEntry, weights: WeightSet, legacy_url: str | None) -> Selection:
    return Selection(entry, weights if legacy_url is None else legacy_weights(weights, legacy_url))
