"""Conversions as Ray tasks, on a local Ray instance or an existing cluster (`--ray-address`).

Each task runs the same worker as the local executor (its own process, timeout, memory cap), fetching
its weights through the cache and mirror settings the command passed along, and returns its manifest row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from zoo.converting.executors import Events, ExecutorSettings
from zoo.converting.planning import ConvertTask
from zoo.errors import UserInputError


def _convert_remote(task: ConvertTask, preload: tuple[str, ...]) -> dict[str, Any]:
    from zoo.converting import worker

    worker.preload(preload)
    return worker.run_in_child(task)


class RayExecutor:
    """At most `jobs` Ray tasks in flight, each asking Ray for `threads` CPUs."""

    def __init__(self, settings: ExecutorSettings) -> None:
        try:
            import ray
        except ImportError:
            raise UserInputError("--executor ray needs Ray: pip install 'zoo[ray]' (or pip install ray)") from None
        self.ray = ray
        self.settings = settings
        self.owns = not ray.is_initialized()
        if self.owns:
            local = settings.address is None
            ray.init(
                address=settings.address,
                num_cpus=settings.jobs * settings.threads if local else None,
                include_dashboard=False,
                log_to_driver=False,
            )

    def run(self, tasks: list[ConvertTask], events: Events) -> Iterator[dict[str, Any]]:
        from zoo.converting.rows import failure_row, first_line

        ray = self.ray
        remote = ray.remote(num_cpus=self.settings.threads, max_retries=0)(_convert_remote)
        queue = list(tasks)
        running: dict[Any, ConvertTask] = {}
        try:
            while queue or running:
                while queue and len(running) < max(1, self.settings.jobs):
                    task = queue.pop(0)
                    running[remote.remote(task, self.settings.preload)] = task
                    events.started(task)
                    events.stage(task, "running as a Ray task")
                done, _ = ray.wait(list(running), num_returns=1)
                for ref in done:
                    task = running.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a lost worker or node is one model's failure
                        row = failure_row(task, "failed", type(exc).__name__, first_line(exc))
                    yield row
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def shutdown(self) -> None:
        if self.owns and self.ray.is_initialized():
            self.ray.shutdown()
