"""`zoo fetch`, `zoo cache ...`, `zoo import`, `zoo mirror sync` and `zoo inspect` (torch only inside inspect)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import JsonOption, console, err_console, print_json, table

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs

cache_app = new_typer(help="List, verify and clean the weights cache.", no_args_is_help=True)
mirror_app = new_typer(help="Build a directory that serves as a mirror.", no_args_is_help=True)
commands.add_typer(cache_app, name="cache")
commands.add_typer(mirror_app, name="mirror")

MirrorOption = Annotated[
    list[str] | None, typer.Option("--mirror", help="Base URL of a mirror, tried before the origin (repeatable).")
]
OfflineOption = Annotated[bool, typer.Option("--offline", help="Open no socket: use the cache or fail.")]


@contextlib.contextmanager
def _progress(enabled: bool):
    """`progress_for(label)` callbacks drawing one rich bar per file (size, speed, ETA) on stderr."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=not enabled or not err_console.is_terminal,
        transient=False,
    )

    def progress_for(label: str):
        task = bars.add_task(label, total=None)
        return lambda done, total: bars.update(task, completed=done, total=total)

    with bars:
        yield progress_for


def _is_url(text: str) -> bool:
    return "://" in text


@commands.command("fetch")
def fetch_command(
    names: Annotated[list[str], typer.Argument(help="NAME[.TAG], a pattern like 'resnet*', or a URL.")],
    mirror: MirrorOption = None,
    offline: OfflineOption = False,
    force: Annotated[bool, typer.Option("--force", help="Download again even when cached.")] = False,
    sha256: Annotated[str | None, typer.Option("--sha256", help="Expected sha256 of a URL's file.")] = None,
    no_share: Annotated[
        bool, typer.Option("--no-share", help="Do not place files in the Hugging Face / torch hub caches too.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Download weights into the cache, verify their sha256, and print where they are.

    Each file is also placed (a hard link) where timm and torchvision look for it, unless --no-share."""
    from zoo.weights.fetching import fetch, fetch_url
    from zoo.weights.mirror_sync import selections_for

    results = []
    with _progress(not json_output) as progress_for:
        for name in names:
            share = False if no_share else None  # None: the config file's `share` (default true)
            options = {"mirrors": mirror or (), "offline": offline or None, "force": force, "share": share}
            if _is_url(name):
                results.append(fetch_url(name, sha256=sha256, progress=progress_for(name), **options))
                continue
            for selection in selections_for([name]):
                results.append(fetch(selection, progress=progress_for(selection.name), **options))
    if json_output:
        print_json([r.to_dict() for r in results])
        return
    rows = [(r.name or "-", r.tag or "-", _mb(r.size), r.sha256[:16], r.source) for r in results]
    console.print(table(None, ("model", "weights", "size", "sha256", "source"), rows))
    for result in results:
        console.print(str(result.path), soft_wrap=True, highlight=False)
        for place in result.shared:
            console.print(f"  also at {place}", soft_wrap=True, highlight=False, style="dim")
        for note in result.notes:
            err_console.print(f"note: {result.name or result.path.name}: {note}", soft_wrap=True, highlight=False)


@commands.command("import")
def import_command(
    files: Annotated[list[Path], typer.Argument(help="Weights files you already have.")],
    name: Annotated[str | None, typer.Option("--name", help="Only accept it as this model's weights.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Put weights files into the cache after checking their hash against the registry."""
    from zoo.weights.fetching import import_file

    results = [result for path in files for result in import_file(path, name)]
    if json_output:
        print_json([r.to_dict() for r in results])
        return
    rows = [(r.name, r.tag, _mb(r.size), r.sha256[:16], r.path) for r in results]
    console.print(table(None, ("model", "weights", "size", "sha256", "cached as"), rows))


@cache_app.command("list")
def cache_list(json_output: JsonOption = False) -> None:
    """List cached files with their model, size, sha256 and origin."""
    from zoo.weights.cache import list_cache, weights_dir

    records = list_cache()
    if json_output:
        print_json([{**vars(r), "path": str(r.path)} for r in records])
        return
    rows = [(r.key, r.name or "-", r.tag or "-", _mb(r.size), (r.sha256 or "?")[:16], r.source) for r in records]
    console.print(table(None, ("file", "model", "weights", "size", "sha256", "source"), rows))
    console.print(f"{len(records)} files, {_mb(sum(r.size for r in records))} in {weights_dir()}", style="dim")


@cache_app.command("verify")
def cache_verify(json_output: JsonOption = False) -> None:
    """Re-hash every cached file; quarantine (as .bad) those whose hash does not match. Exit 1 if any did."""
    from zoo.weights.cache import verify_cache

    results = verify_cache()
    bad = [r for r in results if r.status == "bad"]
    if json_output:
        print_json([{**vars(r), "moved_to": str(r.moved_to) if r.moved_to else None} for r in results])
    else:
        rows = [(r.key, r.status, r.expected or "-", r.actual[:16], r.moved_to or "") for r in results]
        console.print(table(None, ("file", "status", "expected", "actual", "quarantined as"), rows))
    if bad:
        err_console.print(f"{len(bad)} of {len(results)} files failed verification and were quarantined")
        raise typer.Exit(1)


@cache_app.command("rm")
def cache_rm(
    names: Annotated[list[str], typer.Argument(help="Model NAME[.TAG] (all its weight sets without a tag) or file.")],
) -> None:
    """Remove cached weights of models (or cached files by name)."""
    from zoo.weights.cache import list_cache, remove

    removed = []
    for name in names:
        keys = [r.key for r in list_cache() if name in (r.key, Path(r.key).name)]
        if not keys:
            keys = _keys_for_model(name)
        removed.extend(key for key in keys if remove(key))
    for key in removed:
        console.print(f"removed {key}")
    if not removed:
        err_console.print("nothing to remove: none of those are cached (`zoo cache list` shows what is)")


def _keys_for_model(name: str) -> list[str]:
    from zoo.registry import catalogues
    from zoo.weights.cache import cache_key

    selection = catalogues.models().resolve(name)
    has_tag = "." in name.rpartition(":")[2]
    weights = [selection.weights] if has_tag else list(selection.entry.weights)
    return [cache_key(w.url, w.file_name) for w in weights if w is not None]


@cache_app.command("prune")
def cache_prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    older_than: Annotated[float, typer.Option(help="Only partial/quarantined files older than this (hours).")] = 0.0,
) -> None:
    """Remove quarantined .bad files, abandoned partial downloads and orphaned records."""
    from zoo.weights.cache import prune

    doomed = prune(older_than * 3600, dry_run)
    for path in doomed:
        console.print(f"{'would remove' if dry_run else 'removed'} {path}")
    console.print(f"{len(doomed)} files", style="dim")


@mirror_app.command("sync")
def mirror_sync(
    patterns: Annotated[list[str], typer.Argument(help="Model names, NAME.TAG or patterns like 'resnet*'.")],
    to: Annotated[Path, typer.Option("--to", help="The mirror directory (created if needed).")],
    all_tags: Annotated[bool, typer.Option("--all-tags", help="Every weight set, not just the default.")] = False,
    mirror: MirrorOption = None,
    offline: OfflineOption = False,
    json_output: JsonOption = False,
) -> None:
    """Fetch weights into a directory laid out as a mirror, with index.json and SHA256SUMS."""
    from zoo.weights.mirror_sync import sync

    with _progress(not json_output) as progress_for:
        results = sync(
            patterns, to, all_tags=all_tags, mirrors=mirror or (), offline=offline or None, progress_for=progress_for
        )
    if json_output:
        print_json([r.to_dict() for r in results])
        return
    rows = [(r.name, r.tag, _mb(r.size), r.sha256[:16]) for r in results]
    console.print(table(None, ("model", "weights", "size", "sha256"), rows))
    console.print(f"{len(results)} files in {to} (index.json, SHA256SUMS); serve it and use --mirror / ZOO_MIRROR")


@commands.command("inspect")
def inspect_command(
    target: Annotated[str, typer.Argument(help="A checkpoint file, or a registry NAME[.TAG] (fetched first).")],
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow arbitrary pickles (only for files you trust).")
    ] = False,
    fits: Annotated[bool, typer.Option("--fits/--no-fits", help="Name the architectures it fits.")] = True,
    keys: Annotated[bool, typer.Option("--keys/--no-keys", help="Show the grouped key listing.")] = True,
    ema: Annotated[
        bool | None,
        typer.Option("--ema/--no-ema", help="A training checkpoint's EMA weights or raw ones (default: EMA if any)."),
    ] = None,
    offline: OfflineOption = False,
    json_output: JsonOption = False,
) -> None:
    """Show what a checkpoint holds: tensors, parameters vs buffers, dtypes, grouped keys, architectures it fits."""
    from zoo.weights.inspection import inspect_checkpoint
    from zoo.weights.loading import load_checkpoint

    path = Path(target)
    if not path.is_file():
        from zoo.weights.fetching import fetch

        path = fetch(target, offline=offline or None).path
    report = inspect_checkpoint(load_checkpoint(path, trust_pickle=trust_pickle, ema=ema), find_fits=fits)
    if json_output:
        print_json(report.to_dict())
        return
    console.print(f"[bold]{report.path}[/]  ({report.format})", soft_wrap=True)
    if report.unwrapped:
        console.print(f"unwrapped: {' -> '.join(report.unwrapped)}")
    dtypes = ", ".join(f"{n} {d}" for d, n in report.dtypes.items())
    console.print(
        f"{report.tensors} tensors: {report.parameter_tensors} parameters ({report.parameters:,} values), "
        f"{report.buffer_tensors} buffers ({report.num_batches_tracked} num_batches_tracked); "
        f"{dtypes}; {_mb(report.total_bytes)}"
    )
    for note in report.notes:
        console.print(note, style="dim")
    if keys:
        rows = [(g["keys"], g["count"], g["shape"]) for g in report.groups]
        console.print(table(None, ("keys", "count", "shape"), rows))
    if fits:
        for fit in report.fits:
            extra = f" {', '.join(fit.differing)}" if fit.differing else ""
            via = f" ({fit.via})" if fit.via else ""
            console.print(f"{fit.verdict}: {fit.model}{extra}{via}", highlight=False)
        if not report.fits:
            console.print(f"fits none of the {report.architectures_indexed} architectures indexed (timm, torchvision)")
        for name in report.weights:
            console.print(f"weights: {name} (sha256 {report.sha256[:16]})", highlight=False)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"
