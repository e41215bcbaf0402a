"""`zoo list` and `zoo info`: read the registry, never import torch (`zoo plugins` is in plugin_commands)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import JsonOption, console, print_json, table
from zoo.registry.records import ModelEntry, WeightSet

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs


@commands.command("list")
def list_command(
    patterns: Annotated[
        list[str] | None, typer.Argument(help="fnmatch patterns, e.g. 'resnet*' or 'timm:vit_*'.")
    ] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Leave out names matching this.")] = None,
    family: Annotated[str | None, typer.Option(help="Only this family (torchvision, timm, ...).")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Only models with weights.")] = False,
    json_output: JsonOption = False,
) -> None:
    """List registered models."""
    from zoo.registry import catalogues

    entries = catalogues.models().select(patterns or [], exclude or [], family, pretrained)
    if json_output:
        print_json([_entry_summary(e) for e in entries])
        return
    rows = [
        (e.qualified_name, e.default_weights.tag if e.weights else "-", len(e.weights), _top1(e), e.plugin)
        for e in entries
    ]
    console.print(table(None, ("model", "default weights", "weight sets", "top-1", "plugin"), rows))
    console.print(f"{len(entries)} models", style="dim")


@commands.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="Model name, alias, family:name or name.tag.")],
    json_output: JsonOption = False,
) -> None:
    """Show a model's record: builder, every weight set, URLs, hashes, and whether each is cached."""
    from zoo.api import resolve
    from zoo.weights.cache import is_cached

    selection = resolve(name)
    entry = selection.entry
    if json_output:
        data = _entry_summary(entry)
        data["weights"] = [_weights_detail(w) for w in entry.weights]
        print_json(data)
        return
    console.print(f"[bold]{entry.qualified_name}[/]  builder {entry.builder}  plugin {entry.plugin}")
    if entry.aliases:
        console.print(f"aliases: {', '.join(entry.aliases)}")
    if entry.remap:
        console.print(f"key remap: {entry.remap}")
    rows = [
        (
            w.tag + (" *" if i == 0 else ""),
            w.num_classes,
            "x".join(map(str, w.input_size)) if w.input_size else "",
            w.top1,
            w.gmacs,
            _size(w),
            "yes" if is_cached(w) else "no",
        )
        for i, w in enumerate(entry.weights)
    ]
    columns = ("weights (* default)", "classes", "input", "top-1", "GMACs", "size", "cached")
    console.print(table(None, columns, rows))
    for w in entry.weights:
        check = f"sha256 {w.sha256}" if w.sha256 else f"sha256 prefix {w.hash_prefix}" if w.hash_prefix else "no hash"
        built = "".join(f"; built with {k}={v!r}" for k, v in w.builder_kwargs.items())
        console.print(f"{w.tag}: {w.url} ({check}{built})", soft_wrap=True)


def _entry_summary(entry: ModelEntry) -> dict:
    return {
        "name": entry.qualified_name,
        "family": entry.family,
        "builder": entry.builder,
        "aliases": list(entry.aliases),
        "default_weights": entry.default_weights.tag if entry.weights else None,
        "weights": [w.tag for w in entry.weights],
        "remap": entry.remap,
        "tags": list(entry.tags),
        "plugin": entry.plugin,
    }


def _weights_detail(weights: WeightSet) -> dict:
    from zoo.weights.cache import cached_path, is_cached

    data = weights.to_dict()
    data["expected_hash"] = weights.expected_hash
    data["cached"] = is_cached(weights)
    data["cache_path"] = str(cached_path(weights))
    return data


def _top1(entry: ModelEntry):
    weights = entry.default_weights
    return weights.top1 if weights else None


def _size(weights: WeightSet) -> str:
    if weights.size:
        return f"{weights.size / 1e6:.1f} MB"
    return f"~{weights.file_size_mb:.1f} MB" if weights.file_size_mb else ""
