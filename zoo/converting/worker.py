"""Convert one model in its own process, with a timeout, a memory cap and a fixed number of threads.

Workers are forked from a multiprocessing fork server that has imported torch, onnx and the batch's model
libraries once, so each model gets a fresh process without paying ~5-15 s of imports. Each worker starts
its own session (so a terminal's Ctrl-C reaches only the command, which then kills it), dies with its
parent on Linux, and caps its address space with RLIMIT_AS. Threads: one worker per core at
`cores // jobs` threads each; two workers of two threads on two cores were 15x slower than two of one
thread (OpenMP spin-waits fight each other), see benchmarks/convert.py.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from zoo.converting.planning import ConvertTask

# Imported once by the fork server. The private torch/onnxscript modules are what the first dynamo export
# of a process would import: preloading them cut a tiny model's export from 15 s to 4 s (missing ones are skipped).
CORE_MODULES = (
    "torch",
    "torch.onnx",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "onnxsim",
    "zoo.exporting",
    "zoo.exporting.core",
    "torch._dynamo",
    "torch.export",
    "torch.onnx._internal.exporter._core",
    "onnxscript.function_libs.torch_lib.ops",
)
GIB = 1 << 30
Stage = Callable[[str], None]

_live: set[Any] = set()
_live_lock = threading.Lock()
_warm = threading.Event()
_warm_lock = threading.Lock()


def default_threads(jobs: int, cores: int | None = None) -> int:
    """Threads per worker so that `jobs` workers fill the cores without oversubscribing them."""
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, jobs))


def default_memory_cap(jobs: int) -> int:
    """Address-space cap per worker: 90% of physical memory shared by `jobs` workers, at least 8 GiB.

    RLIMIT_AS counts virtual memory: torch with onnx and onnxruntime maps ~4 GiB before a model is built.
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 * GIB
    return max(8 * GIB, int(total * 0.9 / max(1, jobs)))


def preload(modules: Iterable[str]) -> None:
    """Modules the fork server imports once (missing ones are ignored) before it forks workers."""
    wanted = list(dict.fromkeys([*CORE_MODULES, *modules]))
    _context().set_forkserver_preload(wanted)


def warm_up() -> None:
    """Start the fork server and wait for its imports, so a model's timeout does not count them."""
    with _warm_lock:
        if _warm.is_set():
            return
        process = _context().Process(target=_noop, name="zoo-convert warm-up")
        process.start()
        process.join()
        _warm.set()


def _noop() -> None:
    pass


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_in_child(task: ConvertTask, on_stage: Stage | None = None) -> dict[str, Any]:
    """Convert `task` in a new worker process; its manifest row, whatever happened to the worker."""
    from zoo.converting.rows import failure_row

    warm_up()
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(task, sender), name=f"zoo-convert {task.name}")
    started, clock = time.time(), time.perf_counter()
    process.start()
    sender.close()
    with _live_lock:
        _live.add(process)
    deadline = None if task.timeout is None else clock + task.timeout
    try:
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.perf_counter())
            ready = wait([receiver, process.sentinel], timeout=remaining)
            if not ready:
                _kill(process)
                message = f"no result after {task.timeout:g} s; the worker was killed"
                row = failure_row(task, "timeout", "TimeoutError", message)
                break
            message = _receive(receiver) if receiver in ready or receiver.poll() else None
            if message is not None:
                kind, payload = message
                if kind == "done":
                    row = payload
                    break
                if on_stage is not None:
                    on_stage(payload)
                continue
            process.join()
            row = failure_row(task, "failed", "WorkerCrashed", _death(process.exitcode, task))
            break
    finally:
        _kill(process)
        process.join()
        receiver.close()
        with _live_lock:
            _live.discard(process)
        _discard_staging(Path(task.output))
    row["started_at"] = started
    row["wall_seconds"] = round(time.perf_counter() - clock, 3)
    return row


def kill_all() -> None:
    """Kill every worker this process started that is still running (Ctrl-C, executor shutdown)."""
    with _live_lock:
        processes = list(_live)
    for process in processes:
        _kill(process)


def _receive(receiver) -> tuple[str, Any] | None:
    try:
        return receiver.recv()
    except (EOFError, OSError):
        return None


def _kill(process) -> None:
    if process.pid is None or process.exitcode is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the worker and anything it started
    except (ProcessLookupError, PermissionError, AttributeError):
        process.kill()


def _death(exitcode: int | None, task: ConvertTask) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (the kernel's out-of-memory killer, or a kill from outside)" if name == "SIGKILL" else ""
        return f"the worker process died of {name}{hint} while converting {task.name}"
    return f"the worker process exited with code {exitcode} without a result while converting {task.name}"


def _discard_staging(output: Path) -> None:
    """Remove the staging folders a killed export may leave beside its output."""
    for folder in output.parent.glob(f".{output.name}.*.tmp"):
        shutil.rmtree(folder, ignore_errors=True)


def log_path(task: ConvertTask) -> Path:
    """DIR/logs/<family>/<name>.log: what the worker printed (exporter diagnostics, warnings)."""
    output = Path(task.output)
    return output.parent.parent / "logs" / output.parent.name / f"{output.stem}.log"


def _child_main(task: ConvertTask, sender) -> None:
    """The worker process: isolate, log to a file, limit, convert, send the row."""
    _isolate()
    _redirect_output(log_path(task))
    _process_local_tqdm_lock()
    _apply_environment(task.environment)
    set_threads(task.threads)
    if task.max_memory:
        set_memory_cap(task.max_memory)
    from zoo.converting.rows import convert_here

    row = convert_here(task, lambda text: sender.send(("stage", text)))
    sender.send(("done", row))
    sender.close()


def _redirect_output(path: Path) -> None:
    """Send the worker's stdout and stderr to its log, keeping the command's stdout clean (`--json`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _process_local_tqdm_lock() -> None:
    """torch.fx's tqdm would create a multiprocessing lock that a worker's exit leaks (resource_tracker warns)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    tqdm.set_lock(threading.RLock())


def _isolate() -> None:
    try:
        os.setsid()
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the command handles Ctrl-C and kills its workers
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def _apply_environment(environment: dict[str, str]) -> None:
    """Take the command's ZOO_* settings (the fork server may have started under older ones)."""
    from zoo.converting.planning import ENV_NAMES, ENV_PREFIXES

    for key in [k for k in os.environ if k.startswith(ENV_PREFIXES) or k in ENV_NAMES]:
        if key not in environment:
            del os.environ[key]
    os.environ.update(environment)
    for entry in reversed(environment.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    from zoo import plugins

    plugins.reset()


def set_threads(threads: int) -> None:
    """torch intra-op threads (and OMP/MKL for libraries that read them) for this process."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import torch

    torch.set_num_threads(threads)


def set_memory_cap(limit: int) -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def host() -> str:
    return socket.gethostname()
