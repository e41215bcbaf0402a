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


def query_rows(
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    *,
    weights: bool = False,
    family: str | None = None,
    task: str | None = None,
    pretrained: bool = False,
    input_size: str | tuple[int, ...] | None = None,
    min_params: str | float | None = None,
    max_params: str | float | None = None,
    min_gmacs: float | None = None,
    max_gmacs: float | None = None,
    min_top1: float | None = None,
    max_top1: float | None = None,
    sort: str | None = None,
    reverse: bool = False,
) -> list[Selection]:
    """The models (each with its first matching weight set), or with `weights=True` the weight sets, a query
    selects; see list_models."""
    from zoo.registry.query import Query, parse_count, parse_input_size, select_models, select_weights

    query = Query(
        tuple(_patterns(include)),
        tuple(_patterns(exclude)),
        family=family,
        task=task,
        pretrained=pretrained,
        input_size=parse_input_size(input_size) if isinstance(input_size, str) else input_size,
        min_params=parse_count(min_params, "--min-params"),
        max_params=parse_count(max_params, "--max-params"),
        min_gmacs=min_gmacs,
        max_gmacs=max_gmacs,
        min_top1=min_top1,
        max_top1=max_top1,
        sort=sort,
        reverse=reverse,
    )
    registry = catalogues.models()
    if family is not None and family not in registry.families():
        raise UnknownModelError(f"unknown family {family!r}; families: {', '.join(registry.families()) or 'none'}")
    return (select_weights if weights else select_models)(registry, query)


def list_models(
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    family: str | None = None,
    pretrained: bool = False,
    **query: Any,
) -> list[str]:
    """Names of the registered models that fnmatch `include` (on `name`, `family:name`, aliases and `name.tag`)
    and not `exclude`, as `family:name`; with `weights=True`, one `family:name.tag` per matching weight set.

    Filters: `task` (classification, detection, segmentation, video, optical_flow, quantized), `input_size`
    ("224", "384x384", "3x16x112x112"), `min_params`/`max_params` (a number or "10M"), `min_gmacs`/`max_gmacs`,
    `min_top1`/`max_top1`; `sort` by name, params, gmacs (ascending) or top1 (best first), `reverse`.
    """
    rows = query_rows(include, exclude, family=family, pretrained=pretrained, **query)
    if query.get("weights"):
        return [f"{row.entry.family}:{row.name}" for row in rows]
    return [row.entry.qualified_name for row in rows]


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `[family:]name` or an alias; unknown names raise with suggestions."""
    return catalogues.models().get_entry(name)


def resolve(name: str) -> Selection:
    """The model and weight set `[family:]name[.tag]` names (the default weight set without a tag)."""
    return catalogues.models().resolve(name)


def find_file(file_name: str) -> Selection | None:
    """The weight set whose file (today's, or a legacy one like `resnet18-5c106cde.pth`) is named `file_name`."""
    return catalogues.models().find_file(file_name)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build `[family:]name[.tag]` through its family's builder, for that weight set, with random weights
    unless `pretrained` (no download otherwise, whatever the task: detection backbones included).

    The builder gets the entry's `builder_kwargs`, then the weight set's (`vit_b_16.swag_e2e_in1k` is
    built at 384, `timm:vit_base_patch16_224.augreg_in21k` with its 21,843-class head), then `kwargs`,
    each overriding the one before.
    """
    from zoo.targets import build_entry

    selection = resolve(name)
    model = build_entry(selection, kwargs)
    if pretrained:
        from zoo.weights.loading import load_pretrained

        load_pretrained(model, selection)
    return model
