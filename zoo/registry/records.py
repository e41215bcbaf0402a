"""Frozen records the registry holds: models, their weight sets, key remaps and architectures."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote, urlsplit

_HASH_PREFIX = re.compile(r"-([a-f0-9]{6,64})\.")
WEIGHT_FORMATS = ("pth", "safetensors")
# What a model does, which says what input it takes (zoo.tasks builds them from `task` + `input_size`):
# classification and segmentation take a batch of 3xHxW images, detection a list of 3xHxW images, video a
# (3, T, H, W) clip per sample, optical_flow a pair of 3xHxW images.
TASKS = ("classification", "detection", "segmentation", "video", "optical_flow")


def hash_prefix_from_file_name(file_name: str) -> str | None:
    """The sha256 prefix torchvision puts in its file names (`resnet50-19c8e357.pth` gives `19c8e357`)."""
    match = _HASH_PREFIX.search(file_name)
    return match.group(1) if match else None


def file_name_from_url(url: str) -> str:
    """The last path component of a URL, percent-decoded, checked by zoo.paths.safe_component ("weights" if empty).

    `https://h/x/resnet50-19c8e357.pth` gives `resnet50-19c8e357.pth`; `https://h/x/..%2fescape.bin` is refused.
    """
    from zoo.paths import safe_component

    try:
        path = urlsplit(url).path
    except (TypeError, ValueError, AttributeError) as exc:
        from zoo.errors import UnsafeNameError

        raise UnsafeNameError(f"{url!r} is not a URL zoo can take a file name from ({exc})") from None
    name = unquote(path.rsplit("/", 1)[-1])
    return safe_component(name, f"file name of {url}") if name else "weights"


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    """A read-only copy of a mapping, so a frozen record cannot be changed through it."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class WeightSet:
    """One set of pretrained weights for a model: where to get it, how to check it, what it expects."""

    tag: str
    url: str
    file_name: str = ""
    mirrors: tuple[str, ...] = ()
    # Older files of the same weights, each with its own `-<sha256 prefix>.` name (torchvision's pre-0.13
    # resnet50-19c8e357.pth, timm's GitHub releases); see ModelRegistry.find_file.
    legacy_urls: tuple[str, ...] = ()
    sha256: str | None = None
    hash_prefix: str | None = None
    size: int | None = None
    format: str = "pth"
    num_classes: int | None = None
    input_size: tuple[int, ...] | None = None  # (3, H, W); a video model's (3, T, H, W)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: str | None = None
    license: str | None = None
    top1: float | None = None
    top5: float | None = None
    params: int | None = None
    gmacs: float | None = None
    file_size_mb: float | None = None
    aliases: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=frozen)
    # What these weights need from the builder, over the entry's builder_kwargs (torchvision builds its
    # SWAG ViTs at 384: `image_size = 384`); create_model passes them when it builds for this weight set.
    builder_kwargs: Mapping[str, Any] = field(default_factory=frozen)

    def __post_init__(self) -> None:
        if not self.file_name:
            object.__setattr__(self, "file_name", file_name_from_url(self.url))
        if self.sha256:
            object.__setattr__(self, "sha256", self.sha256.lower())
        if self.hash_prefix is None and self.sha256 is None:
            object.__setattr__(self, "hash_prefix", hash_prefix_from_file_name(self.file_name))
        object.__setattr__(self, "meta", frozen(self.meta))
        object.__setattr__(self, "builder_kwargs", frozen(self.builder_kwargs))

    @property
    def expected_hash(self) -> str | None:
        """The full sha256 when known, else the prefix from the file name, else None."""
        return self.sha256 or self.hash_prefix

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict of every field."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["meta"] = dict(self.meta)
        data["builder_kwargs"] = dict(self.builder_kwargs)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    def matches_tag(self, tag: str) -> bool:
        """Whether `tag` names this weight set (its tag or an alias, case-insensitive)."""
        wanted = tag.lower()
        return wanted == self.tag.lower() or any(wanted == a.lower() for a in self.aliases)


@dataclass(frozen=True)
class ModelEntry:
    """A model the registry knows: how to build it and which weight sets it has (the first is the default)."""

    name: str
    family: str
    builder: str
    builder_kwargs: Mapping[str, Any] = field(default_factory=frozen)
    weights: tuple[WeightSet, ...] = ()
    aliases: tuple[str, ...] = ()
    remap: str | None = None
    tags: tuple[str, ...] = ()
    plugin: str = ""
    description: str = ""
    # One of TASKS. Left at the default, it is taken from `tags` when they name a task ("quantized" is a tag).
    task: str = "classification"
    params: int | None = None  # of the model its builder builds by default (a weight set's may differ)

    def __post_init__(self) -> None:
        object.__setattr__(self, "builder_kwargs", frozen(self.builder_kwargs))
        if self.task == "classification":
            named = next((t for t in self.tags if t in TASKS), None)
            if named:
                object.__setattr__(self, "task", named)

    @property
    def qualified_name(self) -> str:
        """`family:name`, unique across the registry."""
        return f"{self.family}:{self.name}"

    @property
    def default_weights(self) -> WeightSet | None:
        return self.weights[0] if self.weights else None

    def weight_set(self, tag: str | None) -> WeightSet | None:
        """The weight set named by `tag` (or the default one when `tag` is None); None if there is none."""
        if tag is None:
            return self.default_weights
        return next((w for w in self.weights if w.matches_tag(tag)), None)


@dataclass(frozen=True)
class Remap:
    """A named key remap: a function or declarative regex rules turning a source state dict into a target's names.

    `function(state_dict, target_model)` returns the remapped dict; `rules` are `(regex, replacement)` pairs
    applied in order to every key. `source` and `target` are fnmatch patterns of the model names it is for.
    """

    name: str
    function: Callable[..., dict] | None = None
    rules: tuple[tuple[str, str], ...] = ()
    source: str = "*"
    target: str = "*"
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class Architecture:
    """A named modified network (e.g. `ResNetBackbone`) built by `builder(**kwargs)` for `zoo adapt`."""

    name: str
    builder: Callable[..., Any]
    description: str = ""
    plugin: str = ""


@dataclass(frozen=True)
class Selection:
    """A model and the weight set a name resolved to (`weights` is None when the model has none)."""

    entry: ModelEntry
    weights: WeightSet | None

    @property
    def name(self) -> str:
        tag = f".{self.weights.tag}" if self.weights else ""
        return f"{self.entry.name}{tag}"
