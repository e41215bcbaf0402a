"""`zoo convert`: a thin layer over zoo.converting (torch is imported only in the worker processes)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Annotated, Any

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
    VerifyOption,
    parse_shape,
)
from zoo.cli.output import console, err_console, print_json
from zoo.errors import ZooError

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs

STATUS_STYLE = {"ok": "green", "skipped": "dim"}  # every failure status is red


class ConversionFailures(ZooError):
    """Some models of a batch failed (exit code 1 unless --allow-failures)."""

    exit_code = 1


@commands.command("convert")
def convert_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the .onnx files, manifest and report.")],
    patterns: Annotated[list[str] | None, typer.Argument(help="Patterns: 'resnet*' 'timm:efficientnet_*'.")] = None,
    exclude: Annotated[list[str] | None, typer.Option("--exclude", "-x", help="Leave out names matching this.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every registered model.")] = False,
    family: Annotated[
        str | None, typer.Option(help="Only this family (torchvision, timm, ...): --all --family torchvision.")
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Workers at a time (default: CPU cores).")] = None,
    executor: Annotated[str, typer.Option(help="Where workers run: local, ray, or a plugin's executor.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Ray cluster address (default: local Ray).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip models whose output and inputs are unchanged.")
    ] = True,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Convert only the models that failed.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds per model before its worker is killed (0: none).")] = 1800,
    max_memory: Annotated[
        float | None, typer.Option(help="GB of address space per worker (default: 90% of RAM / jobs, >= 8).")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch threads per worker (default: cores // jobs).")] = None,
    recycle_after: Annotated[
        int | None, typer.Option(help="Models a worker converts before a fresh one replaces it (default: 25).")
    ] = None,
    recycle_memory: Annotated[
        float | None,
        typer.Option(help="GB resident past which a worker is replaced after its model (default: 4; 0: never)."),
    ] = None,
    allow_failures: Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even if models failed.")] = False,
    weights: Annotated[
        str | None, typer.Option(help="Weight tag, checkpoint FILE, or 'none' (default: each model's default).")
    ] = None,
    input_shape: InputOption = None,
    dynamic_batch: DynamicBatchOption = True,
    dynamic_hw: DynamicHWOption = False,
    opset: OpsetOption = None,
    exporter: ExporterOption = "auto",
    simplify: SimplifyOption = True,
    fp16: Fp16Option = False,
    verify: VerifyOption = True,
    atol: AtolOption = None,
    rtol: RtolOption = None,
    external_data: ExternalDataOption = "auto",
    runtime: RuntimeOption = None,
    arg: ArgOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Convert many registry models to ONNX on warm, isolated workers; resumable, with a manifest and a report.

    The whole torchvision catalogue: `zoo convert --all --family torchvision -o onnx/ --weights none`.
    """
    from zoo.converting import ExportOptions, convert
    from zoo.targets import parse_kwargs

    options = ExportOptions(
        weights=weights,
        input_shape=parse_shape(input_shape) if input_shape else None,
        dynamic_batch=dynamic_batch,
        dynamic_hw=dynamic_hw,
        opset=opset,
        exporter=exporter,
        simplify=simplify,
        fp16=fp16,
        verify=verify,
        atol=atol,
        rtol=rtol,
        external_data=external_data,
        runtimes=tuple(runtime or ()),
        kwargs=parse_kwargs(arg),
    )
    display = LiveDisplay(enabled=not json_output)
    with display:
        result = convert(
            patterns or [],
            output,
            exclude=exclude or [],
            all_models=all_models,
            family=family,
            options=options,
            jobs=jobs,
            executor=executor,
            address=ray_address,
            resume=resume,
            retry_failed=retry_failed,
            timeout=timeout or None,
            max_memory=max_memory,
            threads=threads,
            recycle_after=recycle_after,
            recycle_memory=recycle_memory,
            events=display,
            on_plan=display.planned,
            on_row=display.finished,
        )
    if json_output:
        print_json(result.to_dict())
    else:
        _render(result)
    failed = result.failures
    if failed and not allow_failures:
        names = ", ".join(row["name"] for row in failed[:5]) + (" ..." if len(failed) > 5 else "")
        raise ConversionFailures(
            f"{len(failed)} of {len(result.rows)} conversions failed ({names}); see {result.directory / 'report.md'}; "
            "rerun with --retry-failed after a fix, or pass --allow-failures"
        )


def _render(result) -> None:
    from zoo.converting.report import counts_line, family_table, summary_table

    rows = result.summary
    if rows:
        console.print(summary_table(rows))
        console.print(family_table(rows))
    jobs = f"{result.jobs} job(s) x {result.threads} thread(s), {result.executor} executor"
    console.print(f"{counts_line(rows)}  ({jobs})", style="dim")
    if result.not_retried:
        console.print(f"{len(result.not_retried)} selected models had not failed and were left alone", style="dim")
    console.print(
        f"manifest: {result.directory / 'manifest.jsonl'}  report: {result.directory / 'report.md'}",
        style="dim",
        soft_wrap=True,
    )


class LiveDisplay:
    """An overall bar plus one line per running worker, on stderr (nothing when not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console.is_terminal
        self.lock = threading.Lock()
        self.lines: dict[str, Any] = {}
        self.overall = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LiveDisplay:
        if not self.enabled:
            return self
        from rich.console import Group
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
        )
        self.workers = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err_console
        )
        self.live = self._stack.enter_context(
            Live(Group(self.bar, self.workers), console=err_console, refresh_per_second=8, transient=True)
        )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def planned(self, plan) -> None:
        if self.enabled:
            done = len(plan.up_to_date)
            self.overall = self.bar.add_task("converting", total=len(plan.tasks) + done, completed=done)
            if done:
                err_console.print(f"{done} models up to date in the manifest: skipped", style="dim")

    def started(self, task) -> None:
        if self.enabled:
            with self.lock:
                self.lines[task.name] = self.workers.add_task(f"{task.name}: starting")

    def stage(self, task, text: str) -> None:
        if self.enabled:
            with self.lock:
                line = self.lines.get(task.name)
                if line is not None:
                    self.workers.update(line, description=f"{task.name}: {text}")

    def finished(self, row: dict) -> None:
        if not self.enabled:
            return
        with self.lock:
            line = self.lines.pop(row["name"], None)
            if line is not None:
                self.workers.remove_task(line)
            if self.overall is not None:
                self.bar.advance(self.overall)
        status = row["status"]
        error = f"  {row['error_class']}: {row['error']}" if row.get("error_class") else ""
        style = STATUS_STYLE.get(status, "red")
        err_console.print(
            f"[{style}]{status:>13}[/] {row['name']}  {row.get('wall_seconds', 0):.1f} s{error}",
            soft_wrap=True,
            highlight=False,
        )
