"""`zoo adapt TARGET --from SOURCE`: the load plan as a table, the proof, the adapted state dict."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import console, err_console, print_json, table

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs


def _slug(text: str) -> str:
    name = (
        Path(text).stem
        if text.lower().endswith((".pth", ".pt", ".bin", ".safetensors", ".py")) or "/" in text
        else text
    )
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


@commands.command("adapt")
def adapt_command(
    target: Annotated[
        str, typer.Argument(help="Architecture (ResNetBackbone), registry model, or file.py:Class / module:Class.")
    ],
    source: Annotated[
        str, typer.Option("--from", help="Registry model (its weights are fetched) or a checkpoint file.")
    ],
    from_weights: Annotated[
        Path | None, typer.Option("--from-weights", help="Weights file for the --from architecture.")
    ] = None,
    args: Annotated[
        list[str] | None, typer.Option("--arg", help="Target builder argument key=value (repeatable).")
    ] = None,
    num_classes: Annotated[
        int | None, typer.Option("--num-classes", help="Replace the classifier with N classes.")
    ] = None,
    in_chans: Annotated[
        int | None, typer.Option("--in-chans", help="Adapt the first convolution to C channels.")
    ] = None,
    rules: Annotated[
        list[str] | None, typer.Option("--rule", help="Key rename 'REGEX=>REPLACEMENT' (repeatable).")
    ] = None,
    expect_missing: Annotated[
        list[str] | None, typer.Option("--expect-missing", help="Glob of target keys --strict allows unfed.")
    ] = None,
    init: Annotated[
        str, typer.Option("--init", help="Init for unfed tensors: default, xavier, kaiming, zeros.")
    ] = "default",
    strict: Annotated[bool, typer.Option("--strict", help="Fail unless every target key is fed.")] = False,
    min_coverage: Annotated[
        float | None, typer.Option("--min-coverage", help="Fail below this fraction of parameters fed.")
    ] = None,
    verify: Annotated[
        bool | None,
        typer.Option(
            "--verify/--no-verify", help="Compare outputs (default: on when the source architecture is known)."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Plan only: load nothing, write no weights.")] = False,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Adapted state dict (.safetensors, or .pth).")
    ] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="safetensors (default) or pth.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report here.")] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow pickles that need arbitrary code.")
    ] = False,
    ema: Annotated[
        bool | None,
        typer.Option("--ema/--no-ema", help="A training checkpoint's EMA weights or raw ones (default: EMA if any)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the full report (every key) as JSON.")] = False,
) -> None:
    """Load pretrained weights into a (modified) architecture, with a load plan and a numerical proof.

    Exit codes: 10 nothing loaded, 11 --strict failed, 12 below --min-coverage, 13 verification failed,
    14 ambiguous structural match, 15 --verify inconclusive (the source's outputs prove nothing, or no proof ran).
    """
    from zoo.adapt.core import adapt
    from zoo.adapt.errors import AdaptError
    from zoo.targets import parse_kwargs

    if output is None and not dry_run:
        suffix = ".pth" if output_format == "pth" else ".safetensors"
        output = Path(f"{_slug(target)}-from-{_slug(source)}{suffix}")
    try:
        _, result = adapt(
            target,
            source,
            from_weights=from_weights,
            kwargs=parse_kwargs(args),
            num_classes=num_classes,
            in_chans=in_chans,
            rules=rules or (),
            expect_missing=expect_missing or (),
            init=init,
            strict=strict,
            min_coverage=min_coverage,
            verify=verify,
            dry_run=dry_run,
            output=output,
            output_format=output_format,
            report_path=report,
            trust_pickle=trust_pickle,
            ema=ema,
        )
    except AdaptError as exc:
        if exc.report is not None:
            if report is not None:
                exc.report.write_json(report)
            if json_output:
                print_json(exc.report.to_dict())
            else:
                _render(exc.report, err=True)
        raise
    if json_output:
        print_json(result.to_dict())
    else:
        _render(result)


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _render(result, err: bool = False) -> None:
    from zoo.adapt.report import group_keys

    out = err_console if err else console
    data = result.to_dict()
    rows = [
        (
            r["outcome"],
            r["strategy"],
            r["target"],
            r["source"] if r["source"] != r["target"] else "=",
            r["tensors"],
            r["detail"],
        )
        for r in data["groups"]
    ]
    out.print(
        table(
            f"{result.target} <- {result.source}", ("outcome", "by", "target keys", "source keys", "n", "detail"), rows
        )
    )
    modules = [
        (m, f"{c['tensors_fed']}/{c['tensors']}", _percent(c["by_tensors"]), _percent(c["by_params"]))
        for m, c in data["coverage_by_module"].items()
    ]
    out.print(table("coverage by module", ("module", "tensors", "by tensors", "by params"), modules))
    cover = data["coverage"]
    out.print(
        f"fed {cover['tensors_fed']}/{cover['tensors']} tensors ({_percent(cover['by_tensors'])}), "
        f"{cover['params_fed']:,}/{cover['params']:,} parameters ({_percent(cover['by_params'])})"
    )
    for note in data["notes"]:
        out.print(f"note: {note}", soft_wrap=True)
    initial = data["still_initial"]
    trained_not = [t["key"] for t in initial if t["kind"] != "not fed"]
    if trained_not:
        out.print(
            f"[yellow]loaded but still at a default initial value:[/] {len(trained_not)} tensors "
            f"(the source never trained them?), e.g. {', '.join(group_keys(trained_not)[:3])}",
            soft_wrap=True,
        )
    check = data["verify"]
    if check:
        if check["status"] == "skipped":
            out.print(f"verify: skipped ({check['reason']})", soft_wrap=True)
        else:
            verdict = {"equal": "[green]equal[/]", "inconclusive": "[yellow]inconclusive[/]"}
            out.print(
                f"verify ({check['summary']}): {verdict.get(check['status'], '[red]DIFFERENT[/]')}, "
                f"max abs diff {check['max_abs']:.3g}, max rel diff {check['max_rel']:.3g}"
                + (f" ({check['reason']})" if check["reason"] else ""),
                soft_wrap=True,
            )
    if data["output"]:
        out.print(f"wrote {data['output']}")
