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
from queue import Queue
from typing import Any, Protocol

from zoo.converting.planning import ConvertTask
from zoo.converting.pool import RECYCLE_AFTER, RECYCLE_RSS
from zoo.errors import UserInputError
from zoo.registry import catalogues


@dataclass(frozen=True)
class ExecutorSettings:
    """What an executor is asked for: parallel workers, threads each, a cluster address, modules to preload,
    and when a warm worker is retired (after `recycle_after` models, or past `recycle_rss` bytes resident)."""

    jobs: int
    threads: int = 1
    address: str | None = None
    preload: tuple[str, ...] = ()
    recycle_after: int = RECYCLE_AFTER
    recycle_rss: int | None = RECYCLE_RSS


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
    """`jobs` warm worker processes on this machine, each converting one model after another."""

    def __init__(self, settings: ExecutorSettings) -> None:
        from zoo.converting.pool import Recycling, Slot

        self.settings = settings
        recycling = Recycling(settings.recycle_after, settings.recycle_rss)
        self.slots = [Slot(recycling, settings.preload) for _ in range(max(1, settings.jobs))]

    def run(self, tasks: list[ConvertTask], events: Events) -> Iterator[dict[str, Any]]:
        from zoo.converting import worker

        worker.preload(self.settings.preload)
        free: Queue = Queue()
        for slot in self.slots:
            free.put(slot)
        pool = ThreadPoolExecutor(max_workers=len(self.slots), thread_name_prefix="zoo-convert")

        def job(task: ConvertTask) -> dict[str, Any]:
            slot = free.get()
            try:
                events.started(task)
                return slot.convert(task, lambda text: events.stage(task, text))
            finally:
                free.put(slot)

        pending = {pool.submit(job, task) for task in tasks}
        try:
            while pending:
                done, pending = wait_futures(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
            if pending:  # interrupted: end the running models now
                for slot in self.slots:
                    slot.kill()
            pool.shutdown(wait=True, cancel_futures=True)
            for slot in self.slots:
                slot.close(kill=bool(pending))

    def shutdown(self) -> None:
        for slot in self.slots:
            slot.close(kill=True)
