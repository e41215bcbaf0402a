"""`zoo.converting.convert(...)`: select, plan, run on an executor, record each row, write the reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.converting import durations, manifest, planning
from zoo.converting.executors import Events, ExecutorSettings, NoEvents, create
from zoo.converting.options import ExportOptions
from zoo.converting.pool import RECYCLE_AFTER, RECYCLE_RSS
from zoo.converting.report import counts, family_counts, write_reports
from zoo.converting.worker import GIB
from zoo.errors import UserInputError


@dataclass
class ConvertResult:
    """What one `zoo convert` run did: rows it recorded, models it found up to date, and the reports."""

    directory: Path
    rows: list[dict[str, Any]] = field(default_factory=list)
    up_to_date: list[dict[str, Any]] = field(default_factory=list)
    not_retried: list[str] = field(default_factory=list)
    planned: int = 0
    jobs: int = 1
    threads: int = 1
    executor: str = "local"
    reports: list[Path] = field(default_factory=list)
    interrupted: bool = False

    @property
    def summary(self) -> list[dict[str, Any]]:
        """This run's rows, then the models skipped as up to date (status `skipped`), by name."""
        skipped = [row | {"status": "skipped"} for row in self.up_to_date]
        return sorted(self.rows, key=lambda r: r["name"]) + sorted(skipped, key=lambda r: r["name"])

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if manifest.is_failure(row)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.directory),
            "manifest": str(manifest.manifest_path(self.directory)),
            "executor": self.executor,
            "jobs": self.jobs,
            "threads_per_worker": self.threads,
            "counts": counts(self.summary),
            "families": family_counts(self.summary),
            "interrupted": self.interrupted,
            "models": self.summary,
            "not_retried": self.not_retried,
            "reports": [str(p) for p in self.reports],
        }


def convert(
    patterns: Iterable[str],
    output: str | Path,
    *,
    exclude: Iterable[str] = (),
    all_models: bool = False,
    family: str | None = None,
    options: ExportOptions | None = None,
    jobs: int | None = None,
    executor: str = "local",
    address: str | None = None,
    resume: bool = True,
    retry_failed: bool = False,
    timeout: float | None = 1800.0,
    max_memory: float | None = None,
    threads: int | None = None,
    recycle_after: int | None = None,
    recycle_memory: float | None = None,
    events: Events | None = None,
    on_plan: Callable[[planning.Plan], None] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> ConvertResult:
    """Convert every selected registry model (of `family` only, when given) to DIR/<family>/<name>.onnx.

    `jobs` warm worker processes convert one model after another; a model that crashes, hangs past `timeout`
    seconds (None: no limit) or passes `max_memory` (GB of address space per worker) ends only its worker,
    which is replaced. A worker is retired after `recycle_after` models (None: 25) or once its resident memory
    is past `recycle_memory` GB (None: 4, 0: never). Appends a row per model to DIR/manifest.jsonl as each finishes;
    `resume` skips models whose output and inputs are unchanged; `retry_failed` converts only the models
    whose latest row is a failure. Models are dispatched longest first by their last run's time where zoo
    knows it (zoo.converting.durations). The reports (DIR/report.md, report.html) count each task family.
    """
    from zoo.converting import worker

    if jobs is not None and jobs < 1:
        raise UserInputError(f"--jobs must be at least 1, not {jobs}")
    if timeout is not None and timeout <= 0:
        raise UserInputError(f"--timeout must be positive seconds, not {timeout:g}")
    if max_memory is not None and max_memory <= 0:
        raise UserInputError(f"--max-memory must be positive GB, not {max_memory:g}")
    recycle_after = RECYCLE_AFTER if recycle_after is None else recycle_after
    recycle_memory = RECYCLE_RSS / GIB if recycle_memory is None else recycle_memory
    if recycle_after < 1:
        raise UserInputError(f"--recycle-after must be at least 1 model, not {recycle_after}")
    if recycle_memory < 0:
        raise UserInputError(f"--recycle-memory must be GB (0: never), not {recycle_memory:g}")
    directory = Path(output).expanduser().resolve()
    options = options or ExportOptions()
    if options.runtimes:  # an unknown or missing runtime fails the command once, not every model
        from zoo.exporting.runtimes import resolve

        resolve(options.runtimes)
    entries = planning.select(patterns, exclude, all_models, family)
    jobs = jobs or worker.default_threads(1)
    threads = threads or worker.default_threads(jobs)
    cap = int(max_memory * worker.GIB) if max_memory else worker.default_memory_cap(jobs)
    plan = planning.plan(
        entries,
        directory,
        options,
        resume=resume,
        retry_failed=retry_failed,
        timeout=timeout,
        max_memory=cap,
        threads=threads,
    )
    plan.tasks = durations.longest_first(plan.tasks, durations.load())
    if on_plan is not None:
        on_plan(plan)
    result = ConvertResult(directory, [], plan.up_to_date, plan.not_retried, len(plan.tasks), jobs, threads, executor)
    directory.mkdir(parents=True, exist_ok=True)
    modules = tuple(dict.fromkeys(e.builder.partition(":")[0] for e in entries if ":" in e.builder))
    settings = ExecutorSettings(
        jobs=min(jobs, max(1, len(plan.tasks))),
        threads=threads,
        address=address,
        preload=modules,
        recycle_after=recycle_after,
        recycle_rss=int(recycle_memory * GIB) if recycle_memory else None,
    )
    try:
        if plan.tasks:
            runner = create(executor, settings)
            try:
                for row in runner.run(plan.tasks, events or NoEvents()):
                    manifest.append(directory, row)
                    result.rows.append(row)
                    if on_row is not None:
                        on_row(row)
            finally:
                runner.shutdown()
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    finally:
        durations.record(result.rows, plan.tasks)
        latest = manifest.read_latest(directory)
        result.reports = write_reports(directory, [latest[name] for name in sorted(latest)])
    return result
