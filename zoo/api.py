"""The Python API the CLI is a thin layer over: list, look up and build models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownModelError
from zoo.registry import catalogues
from zoo.registry.records import ModelEntry, Selection

if TYPE_CHECKING:
    from torch import nn


def _patterns(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def list_models(
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    family: str | None = None,
    pretrained: bool = False,
) -> list[str]:
    """Names (`family:name`) of registered models matching fnmatch `include` and not `exclude` patterns."""
    entries = catalogues.models().select(_patterns(include), _patterns(exclude), family, pretrained)
    return [entry.qualified_name for entry in entries]


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `[family:]name` or an alias; unknown names raise with suggestions."""
    return catalogues.models().get_entry(name)


def resolve(name: str) -> Selection:
    """The model and weight set `[family:]name[.tag]` names (the default weight set without a tag)."""
    return catalogues.models().resolve(name)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build `[family:]name[.tag]` through its family's builder, for that weight set.

    The builder gets the entry's `builder_kwargs`, then the weight set's (`vit_b_16.swag_e2e_in1k` is
    built at 384), then `kwargs`, each overriding the one before.
    """
    selection = resolve(name)
    entry = selection.entry
    build = catalogues.builders().get(entry.family)
    if build is None:
        raise UnknownModelError(
            f"no plugin provides a builder for family {entry.family!r} (needed by {entry.qualified_name}); "
            "install the plugin for it (`zoo plugins` lists what is loaded)"
        )
    weights_kwargs = selection.weights.builder_kwargs if selection.weights is not None else {}
    model = build(entry, **{**weights_kwargs, **kwargs})
    if pretrained:
        from zoo.weights.loading import load_pretrained

        load_pretrained(model, selection)
    return model
