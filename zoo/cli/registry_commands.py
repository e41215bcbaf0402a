"""`zoo list` and `zoo info`: read the registry, never import torch (`zoo plugins` is in plugin_commands)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import JsonOption, console, print_columns, print_json, table
from zoo.registry.records import ModelEntry, Selection, WeightSet

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs


def _filter(help_text: str, *names: str):
    """An option shown under "Filters" in `zoo list --help`."""
    return typer.Option(*names, help=help_text, rich_help_panel="Filters")


@commands.command("list")
def list_command(
    patterns: Annotated[
        list[str] | None,
        typer.Argument(
            help="fnmatch patterns on names and name.tag: 'resnet*', 'timm:vit_*', '*in22k*', 'resnet50.*'."
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-x", help="Leave out names (and name.tag) matching this.")
    ] = None,
    weights: Annotated[
        bool, typer.Option("--weights", "-w", help="One line per weight set (name.tag), not per model.")
    ] = False,
    family: Annotated[str | None, _filter("Only this family (torchvision, timm, ...).")] = None,
    task: Annotated[
        str | None, _filter("classification, detection, segmentation, video, optical_flow or quantized.")
    ] = None,
    pretrained: Annotated[bool, _filter("Only models with weights.", "--pretrained")] = False,
    input_size: Annotated[
        str | None,
        _filter("Weights evaluated at this size: 224, 384x384, 3x16x112x112."),
    ] = None,
    min_params: Annotated[str | None, _filter("At least this many parameters: 5M, 1.5B.")] = None,
    max_params: Annotated[str | None, _filter("At most this many parameters: 10M.")] = None,
    min_gmacs: Annotated[float | None, _filter("At least this many GMACs.")] = None,
    max_gmacs: Annotated[float | None, _filter("At most this many GMACs.")] = None,
    min_top1: Annotated[float | None, _filter("ImageNet top-1 at least this (%).")] = None,
    max_top1: Annotated[float | None, _filter("ImageNet top-1 at most this (%).")] = None,
    sort: Annotated[
        str | None,
        _filter("name, params, gmacs (smallest first) or top1 (best first)."),
    ] = None,
    reverse: Annotated[bool, _filter("Reverse the order.", "--reverse")] = False,
    json_output: JsonOption = False,
) -> None:
    """List registered models, or with --weights every weight set; filter, sort, or print JSON."""
    from zoo.api import query_rows

    rows = query_rows(
        patterns or [],
        exclude or [],
        weights=weights,
        family=family,
        task=task,
        pretrained=pretrained,
        input_size=input_size,
        min_params=min_params,
        max_params=max_params,
        min_gmacs=min_gmacs,
        max_gmacs=max_gmacs,
        min_top1=min_top1,
        max_top1=max_top1,
        sort=sort,
        reverse=reverse,
    )
    if weights:
        _print_weights(rows, json_output)
    else:
        _print_models(rows, json_output)


def _print_models(rows: list[Selection], json_output: bool) -> None:
    if json_output:
        print_json([_entry_summary(r.entry, r.weights) for r in rows])
        return
    columns = ("model", "task", "weights", "sets", "params", "top-1", "plugin")
    cells = [
        (
            r.entry.qualified_name,
            r.entry.task,
            r.weights.tag if r.weights else "-",
            len(r.entry.weights),
            _count(_params(r)),
            r.weights.top1 if r.weights else None,
            r.entry.plugin,
        )
        for r in rows
    ]
    print_columns(columns, cells)
    print(f"{len(rows)} models")


def _print_weights(rows: list[Selection], json_output: bool) -> None:
    if json_output:
        print_json([_weights_summary(r) for r in rows])
        return
    columns = ("weights", "task", "input", "classes", "params", "GMACs", "top-1", "license")
    cells = [
        (
            f"{r.entry.family}:{r.name}",
            r.entry.task,
            _input(r.weights),
            r.weights.num_classes,
            _count(_params(r)),
            r.weights.gmacs,
            r.weights.top1,
            r.weights.license,
        )
        for r in rows
        if r.weights is not None
    ]
    print_columns(columns, cells)
    print(f"{len(rows)} weight sets")


@commands.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="Model name, alias, family:name or name.tag.")],
    json_output: JsonOption = False,
) -> None:
    """Show a model's record: builder, every weight set, URLs, hashes, and whether each is cached."""
    from zoo.api import resolve
    from zoo.weights.cache import is_cached
    from zoo.weights.hub_caches import hash_check

    selection = resolve(name)
    entry = selection.entry
    if json_output:
        data = _entry_summary(entry)
        data["weights"] = [_weights_detail(w) for w in entry.weights]
        print_json(data)
        return
    params = f"  {_count(entry.params)} parameters" if entry.params else ""
    console.print(
        f"[bold]{entry.qualified_name}[/]  {entry.task}{params}  builder {entry.builder}  plugin {entry.plugin}"
    )
    if entry.aliases:
        console.print(f"aliases: {', '.join(entry.aliases)}")
    if entry.remap:
        console.print(f"key remap: {entry.remap}")
    rows = [
        (
            w.tag + (" *" if i == 0 else ""),
            w.num_classes,
            _input(w),
            _count(w.params),
            w.top1,
            w.gmacs,
            _size(w),
            "yes" if is_cached(w) else "no",
        )
        for i, w in enumerate(entry.weights)
    ]
    columns = ("weights (* default)", "classes", "input", "params", "top-1", "GMACs", "size", "cached")
    console.print(table(None, columns, rows))
    for w in entry.weights:
        check = hash_check(w)
        built = "".join(f"; built with {k}={v!r}" for k, v in w.builder_kwargs.items())
        console.print(f"{w.tag}: {w.url} ({check}{built})", soft_wrap=True)
        for url in w.legacy_urls:
            console.print(f"  legacy file: {url}", soft_wrap=True)


def _entry_summary(entry: ModelEntry, shown: WeightSet | None = None) -> dict:
    data = {
        "name": entry.qualified_name,
        "family": entry.family,
        "task": entry.task,
        "builder": entry.builder,
        "aliases": list(entry.aliases),
        "default_weights": entry.default_weights.tag if entry.weights else None,
        "weights": [w.tag for w in entry.weights],
        "params": entry.params,
        "remap": entry.remap,
        "tags": list(entry.tags),
        "plugin": entry.plugin,
    }
    if shown is not None:  # the weight set a listing matched (the default unless a pattern or filter chose)
        data.update(matched_weights=shown.tag, top1=shown.top1, gmacs=shown.gmacs)
    return data


def _weights_summary(row: Selection) -> dict:
    weights = row.weights
    assert weights is not None
    return {
        "name": f"{row.entry.family}:{row.name}",
        "model": row.entry.qualified_name,
        "tag": weights.tag,
        "family": row.entry.family,
        "task": row.entry.task,
        "url": weights.url,
        "file_name": weights.file_name,
        "format": weights.format,
        "expected_hash": weights.expected_hash,
        "num_classes": weights.num_classes,
        "input_size": list(weights.input_size) if weights.input_size else None,
        "params": _params(row),
        "gmacs": weights.gmacs,
        "top1": weights.top1,
        "top5": weights.top5,
        "license": weights.license,
        "legacy_urls": list(weights.legacy_urls),
        "plugin": row.entry.plugin,
    }


def _weights_detail(weights: WeightSet) -> dict:
    from zoo.weights.cache import cached_path, is_cached
    from zoo.weights.hub_caches import hash_check

    data = weights.to_dict()
    data["expected_hash"] = weights.expected_hash
    data["hash_check"] = hash_check(weights)
    data["cached"] = is_cached(weights)
    data["cache_path"] = str(cached_path(weights))
    return data


def _params(row: Selection) -> int | None:
    return (row.weights.params if row.weights else None) or row.entry.params


def _count(value: int | None) -> str | None:
    """25557032 as 25.6M."""
    if not value:
        return None
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= size:
            return f"{value / size:.1f}{suffix}"
    return str(value)


def _input(weights: WeightSet | None) -> str:
    return "x".join(map(str, weights.input_size)) if weights and weights.input_size else ""


def _size(weights: WeightSet) -> str:
    if weights.size:
        return f"{weights.size / 1e6:.1f} MB"
    return f"~{weights.file_size_mb:.1f} MB" if weights.file_size_mb else ""
