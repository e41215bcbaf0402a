"""The parent's side of warm workers: start one, feed it tasks, watch it, replace it when it dies or grows.

A `Slot` holds at most one live worker (zoo.converting.worker.serve) and converts one task at a time on it.
The worker is killed, and replaced for the next task, when its model passes the timeout, when it dies (a
segfault, `os._exit`, the OOM killer), when its resident memory passes the cap, or after a memory error;
it is retired when it has converted `recycle_after` models or its RSS has grown past `recycle_rss`. Each of
these gives the model's row a status that says why (`timeout`, `crashed`, `memory`) with the signal or limit.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from zoo.converting import worker as workers
from zoo.converting.planning import ConvertTask
from zoo.converting.rows import failure_row

Stage = Callable[[str], None]
POLL_SECONDS = 0.5  # how often the parent reads a busy worker's RSS
START_TIMEOUT = 600.0  # the fork server's first imports can take minutes on a loaded machine
RECYCLE_AFTER = 25
RECYCLE_RSS = 4 * workers.GIB


@dataclass(frozen=True)
class Recycling:
    """When a healthy worker is retired: after `after` models, or once its RSS is past `rss` bytes."""

    after: int = RECYCLE_AFTER
    rss: int | None = RECYCLE_RSS


class WorkerStartError(RuntimeError):
    pass


class Worker:
    """One live worker process and the parent's end of its pipe."""

    def __init__(self, profile: workers.Profile, preload: tuple[str, ...] = ()) -> None:
        context = workers.context()
        self.profile = profile
        self.connection, child = context.Pipe(duplex=True)
        lifeline, self.lifeline = context.Pipe(duplex=False)  # never written: EOF there means this process died
        self.process = context.Process(
            target=workers.serve, args=(child, profile, preload, lifeline), name="zoo-convert worker"
        )
        self.process.start()
        child.close()
        lifeline.close()
        self.models = 0
        self.rss: int | None = None
        message = self._next(START_TIMEOUT)
        if not message or message[0] != "ready":
            self.kill()
            raise WorkerStartError(f"a convert worker did not start ({_death(self.process.exitcode)})")

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.exitcode is None

    def convert(self, task: ConvertTask, on_stage: Stage | None) -> tuple[dict[str, Any], bool]:
        """The task's row, and whether this worker may take another task."""
        try:
            self.connection.send(task)
        except (OSError, EOFError):
            self.process.join(5)
            return failure_row(task, "crashed", "WorkerCrashed", _crash_message(self.process.exitcode, task)), False
        deadline = None if task.timeout is None else time.perf_counter() + task.timeout
        cap = self.profile.max_memory
        while True:
            remaining = None if deadline is None else deadline - time.perf_counter()
            if remaining is not None and remaining <= 0:
                self.kill()
                message = f"no result after {task.timeout:g} s; the worker was killed"
                return failure_row(task, "timeout", "TimeoutError", message), False
            wait_for = POLL_SECONDS if remaining is None else min(POLL_SECONDS, remaining)
            message = self._next(wait_for)
            if message is None:  # nothing yet: check its memory
                rss = workers.rss_bytes(self.pid)
                if cap and rss is not None and rss > cap:
                    self.kill()
                    text = (
                        f"the worker's resident memory reached {rss / workers.GIB:.1f} GiB, past the cap of "
                        f"{cap / workers.GIB:.1f} GiB (--max-memory); it was killed"
                    )
                    return failure_row(task, "memory", "MemoryLimit", text), False
                continue
            if message[0] == "dead":
                return failure_row(task, "crashed", "WorkerCrashed", _crash_message(self.process.exitcode, task)), False
            if message[0] == "stage":
                if on_stage is not None:
                    on_stage(message[1])
                continue
            _, row, self.rss = message
            self.models += 1
            return row, row.get("status") != "memory"  # after a MemoryError the heap may be in pieces

    def _next(self, timeout: float | None) -> tuple | None:
        """The worker's next message; ("dead",) when it has exited; None when `timeout` passed first."""
        ready = wait([self.connection, self.process.sentinel], timeout=timeout)
        if self.connection in ready:
            try:
                return self.connection.recv()
            except (EOFError, OSError):
                pass
        elif not ready:
            return None
        self.process.join(5)
        return ("dead",)

    def stop(self) -> None:
        """Ask the worker to finish (it exits when the pipe closes); kill it if it does not."""
        try:
            self.connection.send(None)
        except (OSError, EOFError):
            pass
        self.process.join(5)
        self.kill()

    def kill(self) -> None:
        if self.process.pid is not None and self.process.exitcode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # the worker and anything it started
            except (ProcessLookupError, PermissionError, AttributeError):
                self.process.kill()
            self.process.join(10)
        self.connection.close()
        self.lifeline.close()


class Slot:
    """Converts one task at a time on a warm worker, replacing and recycling the worker as needed."""

    def __init__(self, recycling: Recycling | None = None, preload: tuple[str, ...] = ()) -> None:
        self.recycling = recycling or Recycling()
        self.preload = preload
        self.worker: Worker | None = None
        self.lock = threading.Lock()
        self.closed = False

    def convert(self, task: ConvertTask, on_stage: Stage | None = None) -> dict[str, Any]:
        """Convert `task` on this slot's worker (started or replaced first if needed); its manifest row."""
        try:
            current = self._worker_for(workers.Profile.of(task))
        except WorkerStartError as exc:
            row = failure_row(task, "crashed", "WorkerStartError", str(exc))
            row.update(started_at=time.time(), wall_seconds=0.0)
            return row
        started, clock = time.time(), time.perf_counter()  # a model's time starts once its worker is ready
        row, reusable = current.convert(task, on_stage)
        row.setdefault("worker", {"pid": current.pid, "model": current.models + 1})
        row["started_at"] = started
        row["wall_seconds"] = round(time.perf_counter() - clock, 3)
        if not reusable:
            self._retire(current, kill=True)
            _discard_staging(Path(task.output))
        elif current.models >= self.recycling.after or (
            self.recycling.rss and current.rss and current.rss > self.recycling.rss
        ):
            self._retire(current, kill=False)
        return row

    def _worker_for(self, profile: workers.Profile) -> Worker:
        with self.lock:
            if self.closed:
                raise WorkerStartError("the batch is shutting down")
            if self.worker is not None and (self.worker.profile != profile or not self.worker.alive()):
                self.worker.stop()
                self.worker = None
            if self.worker is None:
                self.worker = Worker(profile, self.preload)
            return self.worker

    def _retire(self, current: Worker, kill: bool) -> None:
        with self.lock:
            if self.worker is current:
                self.worker = None
        current.kill() if kill else current.stop()

    def close(self, kill: bool = False) -> None:
        """Stop (or kill) the worker; no worker starts on this slot afterwards."""
        with self.lock:
            self.closed = True
            current, self.worker = self.worker, None
        if current is not None:
            current.kill() if kill else current.stop()

    def kill(self) -> None:
        """Kill the running worker now (Ctrl-C); the task it had ends as `crashed` and no worker replaces it."""
        with self.lock:
            self.closed = True
            current = self.worker
        if current is not None and current.alive():
            try:
                os.killpg(current.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the kernel's out-of-memory killer, or a kill from outside)" if name == "SIGKILL" else ""
        return f"died of {name}{hint}"
    return f"exited with code {exitcode}"


def _crash_message(exitcode: int | None, task: ConvertTask) -> str:
    message = f"the worker process {_death(exitcode)} while converting {task.name}; it was replaced"
    if task.address_space_capped and exitcode in (-signal.SIGSEGV, -signal.SIGABRT):
        # native code that does not check a refused allocation dies so under RLIMIT_AS (regnet_y_128gf)
        message += (
            f" (it ran under an address-space cap of {task.max_memory / workers.GIB:.1f} GiB: native code whose"
            " allocation is refused can die so; a larger --max-memory may let it through)"
        )
    return message


def _discard_staging(output: Path) -> None:
    """Remove the staging folders a killed export may leave beside its output."""
    for folder in output.parent.glob(f".{output.name}.*.tmp"):
        shutil.rmtree(folder, ignore_errors=True)
