"""Conversions on Ray actors, on a local Ray instance or an existing cluster (`--ray-address`).

Each of `jobs` actors keeps a warm worker (zoo.converting.pool.Slot, the local executor's own: the same
timeout, memory cap, crash isolation and recycling) and converts one model after another, fetching weights
through the cache and mirror settings the command passed along; rows are the local executor's rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from zoo.converting.executors import Events, ExecutorSettings
from zoo.converting.planning import ConvertTask
from zoo.errors import UserInputError


class ConvertActor:
    """A Ray actor's state: one warm worker slot; `convert(task)` returns the task's manifest row."""

    def __init__(self, preload: tuple[str, ...], recycle_after: int, recycle_rss: int | None) -> None:
        from zoo.converting import worker
        from zoo.converting.pool import Recycling, Slot

        worker.preload(preload)
        self.slot = Slot(Recycling(recycle_after, recycle_rss), preload)

    def convert(self, task: ConvertTask) -> dict[str, Any]:
        return self.slot.convert(task)

    def close(self) -> None:
        self.slot.close()


class RayExecutor:
    """`jobs` Ray actors, each asking Ray for `threads` CPUs, each given one model at a time."""

    def __init__(self, settings: ExecutorSettings) -> None:
        try:
            import ray
        except ImportError:
            raise UserInputError("--executor ray needs Ray: pip install 'zoo[ray]' (or pip install ray)") from None
        self.ray = ray
        self.settings = settings
        self.actors: list[Any] = []
        self.owns = not ray.is_initialized()
        if self.owns:
            local = settings.address is None
            ray.init(
                address=settings.address,
                num_cpus=settings.jobs * settings.threads if local else None,
                include_dashboard=False,
                log_to_driver=False,
            )

    def _actor(self):
        settings = self.settings
        actor_class = self.ray.remote(num_cpus=settings.threads, max_restarts=0, max_task_retries=0)(ConvertActor)
        actor = actor_class.remote(settings.preload, settings.recycle_after, settings.recycle_rss)
        self.actors.append(actor)
        return actor

    def run(self, tasks: list[ConvertTask], events: Events) -> Iterator[dict[str, Any]]:
        from zoo.converting.rows import failure_row, first_line

        ray = self.ray
        queue = list(tasks)
        idle = [self._actor() for _ in range(min(max(1, self.settings.jobs), len(queue)))]
        running: dict[Any, tuple[ConvertTask, Any]] = {}
        try:
            while queue or running:
                while queue and idle:
                    task, actor = queue.pop(0), idle.pop()
                    running[actor.convert.remote(task)] = (task, actor)
                    events.started(task)
                    events.stage(task, "converting on a Ray actor")
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    task, actor = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a lost actor or node is one model's failure
                        row = failure_row(task, "crashed", type(exc).__name__, first_line(exc))
                        self._discard(actor)
                        actor = self._actor()
                    idle.append(actor)
                    yield row
        finally:
            for actor in list(self.actors):
                self._discard(actor, graceful=not running)

    def _discard(self, actor, graceful: bool = False) -> None:
        if graceful:
            try:
                self.ray.get(actor.close.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - it is killed below either way
                pass
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors.remove(actor)

    def shutdown(self) -> None:
        for actor in list(self.actors):
            self._discard(actor)
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
