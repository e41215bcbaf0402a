"""Executors run a batch's conversions and yield each manifest row as it finishes.

Plugins contribute executors through the `register_executors` hook: `register(name, factory)` where
`factory(settings: ExecutorSettings)` returns an object with `run(tasks, events) -> Iterator[row]` and
`shutdown()`. The built-in plugin registers `local` (below) and `ray` (zoo.converting.ray_executor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Protocol

from zoo.converting.planning import ConvertTask
from zoo.errors import UserInputError
from zoo.registry import catalogues


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor is asked for: parallel workers, threads each, a cluster address, modules to preload."""

    jobs: int
    threads: int = 1
    address: str | None = None
    preload: tuple[str, ...] = ()


class Events(Protocol):
    """What an executor reports while it runs (called from any thread)."""

    def started(self, task: ConvertTask) -> None: ...

    def stage(self, task: ConvertTask, text: str) -> None: ...


class Executor(Protocol):
    def run(self, tasks: list[ConvertTask], events: Events) -> Iterator[dict[str, Any]]: ...

    def shutdown(self) -> None: ...


class NoEvents:
    def started(self, task: ConvertTask) -> None:
        pass

    def stage(self, task: ConvertTask, text: str) -> None:
        pass


def create(name: str, settings: ExecutorSettings) -> Executor:
    factory: Callable[[ExecutorSettings], Executor] | None = catalogues.executors().get(name)
    if factory is None:
        known = ", ".join(catalogues.executors().names()) or "none"
        raise UserInputError(f"unknown executor {name!r} (known: {known}); a plugin can add one")
    return factory(settings)


class LocalExecutor:
    """Up to `jobs` worker processes at a time on this machine, each converting one model."""

    def __init__(self, settings: ExecutorSettings) -> None:
        self.settings = settings

    def run(self, tasks: list[ConvertTask], events: Events) -> Iterator[dict[str, Any]]:
        from zoo.converting import worker

        worker.preload(self.settings.preload)
        pool = ThreadPoolExecutor(max_workers=max(1, self.settings.jobs), thread_name_prefix="zoo-convert")

        def job(task: ConvertTask) -> dict[str, Any]:
            events.started(task)
            return worker.run_in_child(task, lambda text: events.stage(task, text))

        pending = {pool.submit(job, task) for task in tasks}
        try:
            while pending:
                done, pending = wait_futures(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
            worker.kill_all()
            pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self) -> None:
        from zoo.converting import worker

        worker.kill_all()
