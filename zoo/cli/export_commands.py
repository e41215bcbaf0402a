"""`zoo export` and `zoo view`: a thin layer over zoo.exporting (torch is imported inside the commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.export_options import (
    ArgOption,
    AtolOption,
    DynamicBatchOption,
    DynamicHWOption,
    ExporterOption,
    ExternalDataOption,
    Fp16Option,
    InputOption,
    OpsetOption,
    RtolOption,
    RuntimeOption,
    SimplifyOption,
    TaskOption,
    VerifyOption,
    parse_shape,
)
from zoo.cli.output import console, err_console, print_json, table
from zoo.errors import UserInputError

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs


@commands.command("export")
def export_command(
    model: Annotated[str, typer.Argument(help="Registry name, architecture, or file.py:Class / package.module:Class.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")],
    weights: Annotated[
        str | None, typer.Option(help="Weight tag, checkpoint FILE, or 'none' (default: the registry default).")
    ] = None,
    task: TaskOption = None,
    input_shape: InputOption = None,
    dynamic_batch: DynamicBatchOption = True,
    dynamic_hw: DynamicHWOption = False,
    opset: OpsetOption = None,
    exporter: ExporterOption = "auto",
    simplify: SimplifyOption = True,
    fp16: Fp16Option = False,
    device: Annotated[str, typer.Option(help="Export from the model on cpu or cuda.")] = "cpu",
    verify: VerifyOption = True,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    external_data: ExternalDataOption = "auto",
    runtime: RuntimeOption = None,
    arg: ArgOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export MODEL to ONNX, simplified, verified against PyTorch, with zoo metadata in the file."""
    from zoo.exporting import VerificationError, export
    from zoo.targets import parse_kwargs

    shape = parse_shape(input_shape) if input_shape else None
    with err_console.status("exporting", spinner="dots") as status:
        try:
            report = export(
                model,
                output,
                weights=weights,
                task=task,
                input_shape=shape,
                dynamic_batch=dynamic_batch,
                dynamic_hw=dynamic_hw,
                opset=opset,
                exporter=exporter,
                simplify=simplify,
                fp16=fp16,
                device=device,
                verify=verify,
                atol=atol,
                rtol=rtol,
                external_data=external_data,
                runtimes=runtime or (),
                kwargs=parse_kwargs(arg),
                progress=lambda message: status.update(message),
            )
        except VerificationError as exc:
            status.stop()
            if json_output:
                print_json(exc.report.to_dict())
            else:
                _render(exc.report)
            raise
    if json_output:
        print_json(report.to_dict())
    else:
        _render(report)


def _render(report) -> None:
    data = report.to_dict()
    size = f"{report.size_bytes / 1e6:.1f} MB" + (f", data in {report.external_data}" * bool(report.external_data))
    nodes = f"{report.nodes_before} -> {report.nodes_after}" + ("" if report.simplified else " (not simplified)")
    rows = [
        ("model", report.model + f"  ({report.task}{', quantized' if report.quantized else ''})"),
        ("weights", report.weights + (f"  sha256 {report.weights_sha256[:12]}" if report.weights_sha256 else "")),
        ("exporter", f"{report.exporter}, opset {report.opset}"),
        ("input", ", ".join(report.input_names) + " " + "x".join(map(str, report.input_shape)) + _dynamic(report)),
        ("outputs", ", ".join(report.output_names)),
        ("nodes", nodes),
        ("precision", "fp16 (float32 inputs/outputs)" if report.fp16 else "int8 (QDQ)" if report.quantized else "fp32"),
        ("size", size),
        ("time", f"{report.seconds.get('total', 0):.1f} s"),
    ]
    if report.fallback_reason:
        rows.insert(3, ("fallback", report.fallback_reason))
    if report.simplify_note:
        rows.append(("simplify", report.simplify_note))
    console.print(table(None, ("", report.output), rows))
    verification = report.verification
    if verification is not None:
        title = (
            f"onnxruntime ({verification.provider}) vs PyTorch ({verification.reference_device}), "
            f"atol {verification.atol:g} rtol {verification.rtol:g}"
        )
        _render_checks(title, verification.checks)
        for runtime in verification.runtimes:
            if runtime.error:
                console.print(f"[red]{runtime.label}: could not run the model:[/] {runtime.error}")
            else:
                _render_checks(f"{runtime.label} vs PyTorch ({verification.reference_device})", runtime.checks)
        if verification.seeded_weights is not None:
            console.print(f"[yellow]random weights:[/] seeded before exporting (seed {verification.seeded_weights})")
        elif verification.degenerate_reference:
            console.print("[yellow]degenerate reference:[/] PyTorch's outputs are empty or constant")
    for note in report.notes:
        console.print(f"note: {note}", style="dim")
    console.print("verified" if data["verified"] else ("written, not verified" if verification is None else "FAILED"))


def _render_checks(title: str, checks) -> None:
    detection = any(o.matched is not None for c in checks for o in c.outputs)
    rows = []
    for c in checks:
        for o in c.outputs:
            row = [
                "x".join(map(str, c.input_shape)),
                o.name,
                f"{o.max_abs:.2e}",
                f"{o.max_rel:.2e}",
                f"{o.cosine:.6f}",
                "" if o.top1 is None else f"{o.top1:.0%}",
            ]
            row += [f"{o.matched:.0%}" if o.matched is not None else ""] if detection else []
            rows.append((*row, "ok" if o.passed else f"FAIL{': ' + o.note if o.note else ''}"))
    columns = ["input", "output", "max abs", "max rel", "cosine", "top-1/agree"]
    columns += ["matched", ""] if detection else [""]
    console.print(table(title, columns, rows))


def _dynamic(report) -> str:
    dims = (["batch"] if report.dynamic_batch else []) + (["height", "width"] if report.dynamic_hw else [])
    return f" (dynamic {', '.join(dims)})" if dims else " (static)"


@commands.command("view")
def view_command(
    file: Annotated[Path, typer.Argument(help="An .onnx file.", exists=True, dir_okay=False)],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    browse: Annotated[bool, typer.Option("--browse/--no-browse", help="Open a web browser.")] = True,
) -> None:
    """Open an ONNX model in netron (pip install netron) on a loopback port; Ctrl-C stops it."""
    try:
        import netron
    except ImportError:
        raise UserInputError("zoo view needs netron: pip install netron") from None
    address = netron.start(str(file), address=("127.0.0.1", port), browse=browse)
    host, bound = address if isinstance(address, tuple) else ("127.0.0.1", port)
    err_console.print(f"serving {file} at http://{host}:{bound} (Ctrl-C to stop)")
    try:
        netron.wait()
    finally:
        netron.stop()
