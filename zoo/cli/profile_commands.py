"""`zoo profile`: parameters, MACs/FLOPs, shapes and latency of one or more models, side by side."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import console, err_console, print_json, table
from zoo.errors import UserInputError

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs

UNITS = "MACs = multiply-accumulates; FLOPs = 2 x MACs. torchvision's docs say 'GFLOPS' but list GMACs."
FVCORE = "fvcore-style GMACs also count BatchNorm/LayerNorm, adaptive pooling and upsampling, as fvcore and thop do."


def parse_input(text: str) -> tuple[int, ...]:
    """`1x3x224x224`, `3x224x224` (batch 1) or `224` (1x3x224x224)."""
    try:
        dims = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise UserInputError(f"--input {text!r}: write it as NxCxHxW (a video's NxCxTxHxW), e.g. 1x3x224x224")
    if len(dims) == 1:
        return (1, 3, dims[0], dims[0])
    if len(dims) == 3:
        return (1, *dims)
    return dims


def _shape(value) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    if isinstance(value, list):
        return ", ".join(_shape(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shape(v)}" for k, v in value.items())
    return "" if value is None else str(value)


@commands.command("profile")
def profile_command(
    models: Annotated[list[str], typer.Argument(help="Registry names, architectures or file.py:Class.")],
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="Input size NxCxHxW (repeatable); default: the weights'.")
    ] = None,
    weights: Annotated[
        str, typer.Option(help="A weights tag, a checkpoint file, or none (counts do not change).")
    ] = "none",
    device: Annotated[str, typer.Option(help="cpu or cuda (for --latency).")] = "cpu",
    task: Annotated[
        str | None,
        typer.Option(help="classification, detection, segmentation, video or optical_flow (default: the registry's)."),
    ] = None,
    per_layer: Annotated[bool, typer.Option("--per-layer", help="A table per module.")] = False,
    depth: Annotated[int | None, typer.Option(help="Modules down to this depth (implies --per-layer).")] = None,
    stages: Annotated[bool, typer.Option("--stages", help="Output shape of each top-level child, in order.")] = False,
    latency: Annotated[bool, typer.Option("--latency", help="Time forward passes (warm-up, then --runs).")] = False,
    runs: Annotated[int, typer.Option(help="Timed runs for --latency.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed warm-up runs for --latency.")] = 10,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads for --latency.")] = None,
    fvcore: Annotated[bool, typer.Option("--fvcore", help="Also show the fvcore/thop-style count, labelled.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG chart (models vs GMACs, or one model's layers).")
    ] = None,
    arg: Annotated[list[str] | None, typer.Option("--arg", help="Builder argument key=value (repeatable).")] = None,
) -> None:
    """Count parameters and MACs/FLOPs (at the aten level, attention included), show shapes, time latency."""
    from rich.progress import Progress

    from zoo.profiling import prepare, profile
    from zoo.profiling.profile import check_device
    from zoo.targets import parse_kwargs

    if runs < 1:
        raise UserInputError("--runs must be at least 1")
    check_device(device)
    shapes = [parse_input(text) for text in inputs or ()]
    kwargs = parse_kwargs(arg)
    per_layer = per_layer or depth is not None
    results = []
    with Progress(console=err_console, transient=True, disable=json_output or len(models) < 2) as progress:
        bar = progress.add_task("profiling", total=len(models) * max(1, len(shapes)))
        for spec in models:
            progress.update(bar, description=spec)
            prepared = prepare(spec, weights=weights, device=device, kwargs=kwargs, real=latency)
            for shape in shapes or [None]:
                results.append(
                    profile(
                        prepared,
                        shape,
                        device=device,
                        latency=latency,
                        runs=runs,
                        warmup=warmup,
                        threads=threads,
                        task=task,
                    )
                )
                progress.advance(bar)
    if csv_file is not None:
        _write_csv(csv_file, results, depth, per_layer)
    if plot is not None:
        from zoo.profiling.plot import plot_comparison, plot_layers

        written = (
            plot_layers(results[0], plot, depth) if per_layer and len(results) == 1 else plot_comparison(results, plot)
        )
        err_console.print(f"wrote {written}")
    if json_output:
        print_json([r.to_dict(depth, per_layer, stages) for r in results])
        return
    _print_summary(results, fvcore, latency)
    for result in results:
        label = f"{result.model} {_shape(result.input_shape)}"
        if stages:
            rows = [(s.name, s.type, _shape(s.output_shape)) for s in result.count.stages()]
            console.print(table(f"{label}: stages", ("child", "type", "output shape"), rows))
        if per_layer:
            total = result.macs or 1
            rows = [
                (
                    "  " * (layer.depth - 1) + layer.name,
                    layer.type,
                    _shape(layer.output_shape),
                    f"{layer.params:,}",
                    f"{layer.macs / 1e6:,.2f}",
                    f"{100 * layer.macs / total:.1f}%",
                )
                for layer in result.layers(depth)
            ]
            columns = ("module", "type", "output shape", "params", "MMACs", "share")
            console.print(table(f"{label}: per module", columns, rows))
    if csv_file is not None:
        err_console.print(f"wrote {csv_file}")


def _print_summary(results, fvcore: bool, latency: bool) -> None:
    columns = ["model", "input", "params", "trainable", "buffers", "MB", "GMACs", "GFLOPs"]
    columns += ["GMACs fvcore-style"] if fvcore else []
    columns += ["pub. GMACs"] if any(r.published_gmacs for r in results) else []
    columns += ["median ms", "p90 ms", "batch", "threads", "device"] if latency else []
    rows = []
    for r in results:
        row = [
            r.model,
            _shape(r.input_shape),
            f"{r.params.total:,}",
            f"{r.params.trainable:,}",
            f"{r.params.buffers:,}",
            f"{r.params.size_mb:.1f}",
            f"{r.gmacs:.3f}",
            f"{r.flops / 1e9:.3f}",
        ]
        row += [f"{r.count.fvcore_macs / 1e9:.3f}"] if fvcore else []
        if "pub. GMACs" in columns:
            row += [r.published_gmacs if r.published_gmacs and tuple(r.input_shape[1:]) == _weights_input(r) else ""]
        if latency:
            t = r.latency
            row += [f"{t.median_ms:.2f}", f"{t.p90_ms:.2f}", t.batch, t.threads, t.device]
        rows.append(row)
    console.print(table(None, columns, rows))
    console.print(UNITS + " pub. = the registry's published figure at that input.", style="dim")
    if fvcore:
        console.print(FVCORE, style="dim")
    for r in results:
        if r.count.uncounted:
            ops = ", ".join(f"{op} x{n}" for op, n in sorted(r.count.uncounted.items()))
            err_console.print(f"[yellow]Warning:[/] {r.model}: ops with no MAC formula (not counted): {ops}")


def _weights_input(result) -> tuple:
    from zoo.api import resolve

    try:
        weights = resolve(result.model).weights
    except Exception:  # noqa: BLE001 - not a registry model: nothing published to compare with
        return ()
    return tuple(weights.input_size or ()) if weights else ()


def _write_csv(path: Path, results, depth: int | None, per_layer: bool) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if per_layer:
        writer.writerow(["model", "input", "module", "type", "depth", "output_shape", "params", "macs", "share"])
        for r in results:
            for layer in r.layers(depth):
                writer.writerow(
                    [
                        r.model,
                        _shape(r.input_shape),
                        layer.name,
                        layer.type,
                        layer.depth,
                        _shape(layer.output_shape),
                        layer.params,
                        layer.macs,
                        f"{layer.macs / (r.macs or 1):.6f}",
                    ]
                )
    else:
        writer.writerow(
            [
                "model",
                "input",
                "params",
                "trainable",
                "buffers",
                "size_mb",
                "macs",
                "flops",
                "fvcore_macs",
                "latency_median_ms",
                "latency_p90_ms",
                "uncounted_ops",
            ]
        )
        for r in results:
            t = r.latency
            writer.writerow(
                [
                    r.model,
                    _shape(r.input_shape),
                    r.params.total,
                    r.params.trainable,
                    r.params.buffers,
                    f"{r.params.size_mb:.3f}",
                    r.macs,
                    r.flops,
                    r.count.fvcore_macs,
                    "" if t is None else f"{t.median_ms:.4f}",
                    "" if t is None else f"{t.p90_ms:.4f}",
                    ";".join(sorted(r.count.uncounted)),
                ]
            )
    from zoo.files import write_text_atomic

    write_text_atomic(path, buffer.getvalue())
