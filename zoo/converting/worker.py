"""The convert worker process: imports torch once, then converts one model after another sent over a pipe.

Workers are forked from a multiprocessing fork server that has imported torch, onnx and the batch's model
libraries once, so starting (or replacing) a worker costs a fork, not ~5-15 s of imports. A worker sets its
limits once (`cores // jobs` torch threads, an RLIMIT_AS address-space cap unless it converts for CUDA,
the command's ZOO_* settings),
loads the registry once, then serves tasks until the parent closes the pipe (zoo.converting.pool drives it,
kills it on a timeout, a crash or too much memory, and recycles it). Each worker starts its own session (so
a terminal's Ctrl-C reaches only the command, which then kills it) and dies with its parent on Linux.
Threads: two workers of two threads on two cores were 15x slower than two of one thread (OpenMP spin-waits
fight each other), see benchmarks/convert.py.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
    "zoo.converting.rows",
    "torch._dynamo",
    "torch.export",
    "torch.onnx._internal.exporter._core",
    "onnxscript.function_libs.torch_lib.ops",
    # What a warm worker's first export still imported (~1 s): once in the server instead of once per worker.
    "torch.export._trace",
    "torch._functorch.aot_autograd",
    "torch._export.passes",
    "torch._export.serde.serialize",
    "torch.onnx._internal.exporter._compat",
    "torch.onnx._internal.exporter._torchlib.ops",
    "onnxscript.rewriter.rules.fusion",
    "networkx",
)
GIB = 1 << 30


@dataclass(frozen=True)
class Profile:
    """What a worker process is set up with once; a task with another profile gets another worker."""

    threads: int = 1
    max_memory: int | None = None  # bytes: RLIMIT_AS, and the resident memory the parent watches
    environment: Mapping[str, str] = field(default_factory=dict)
    resident_only: bool = False  # cap only resident memory: CUDA maps far more address space than it uses

    @classmethod
    def of(cls, task: ConvertTask) -> Profile:
        return cls(task.threads, task.max_memory, dict(task.environment), task.options.device == "cuda")


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
    context().set_forkserver_preload(wanted)


def context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process `pid` (Linux /proc; None where it cannot be read)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as stream:
            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def log_path(task: ConvertTask) -> Path:
    """DIR/logs/<family>/<name>.log: what the worker printed while converting it (exporter diagnostics)."""
    output = Path(task.output)
    return output.parent.parent / "logs" / output.parent.name / f"{output.stem}.log"


def serve(connection, profile: Profile, preload_modules: tuple[str, ...] = (), lifeline=None) -> None:
    """The worker process: isolate, set limits, warm up, then convert each task received until EOF.

    Messages to the parent: ("ready", pid), then per task ("stage", text)... ("done", row, rss bytes).
    `lifeline`: the read end of a pipe the parent never writes; at its EOF (the parent died, even by
    SIGKILL) the worker kills itself, mid-model too.
    """
    _isolate()
    if lifeline is not None:
        threading.Thread(target=_die_with_parent, args=(lifeline,), name="zoo-convert lifeline", daemon=True).start()
    _redirect_output(Path(os.devnull))
    _process_local_tqdm_lock()
    _apply_environment(profile.environment)
    set_threads(profile.threads)
    if profile.max_memory and not profile.resident_only:
        set_memory_cap(profile.max_memory)
    _warm(preload_modules)
    from zoo.converting.rows import convert_here

    connection.send(("ready", os.getpid()))
    converted = 0
    while True:
        try:
            task = connection.recv()
        except (EOFError, OSError):
            break
        if task is None:
            break
        _redirect_output(log_path(task))
        clock = time.perf_counter()
        row = convert_here(task, lambda text: connection.send(("stage", text)))
        converted += 1
        row["worker"] = {"pid": os.getpid(), "model": converted, "seconds": round(time.perf_counter() - clock, 3)}
        sys.stdout.flush()
        sys.stderr.flush()
        connection.send(("done", row, rss_bytes(os.getpid())))
    connection.close()


def _die_with_parent(lifeline) -> None:
    """Block until the parent's end of `lifeline` closes, then kill this worker and what it started.

    PR_SET_PDEATHSIG cannot do this: a worker's parent is the fork server, which lives while any worker does.
    """
    try:
        lifeline.recv()
    except (EOFError, OSError):
        pass
    try:
        os.killpg(os.getpid(), signal.SIGKILL)  # a session leader (_isolate): its group is this worker's
    except OSError:
        os._exit(1)


def _warm(modules: tuple[str, ...]) -> None:
    """What every model would otherwise pay on its first use in this process: plugins, registry, libraries."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the model that needs it reports the failure
            pass
    from zoo.exporting import torchlib_cache
    from zoo.registry import catalogues

    try:
        torchlib_cache.warm()  # once per worker, not once per dynamo export
    except Exception:  # noqa: BLE001 - each export then builds its own registry, as torch does
        pass
    try:
        catalogues.models()
    except Exception:  # noqa: BLE001 - a broken registry fails each model with its message
        pass


def _redirect_output(path: Path) -> None:
    """Send the worker's stdout and stderr to `path`, keeping the command's stdout clean (`--json`)."""
    if path != Path(os.devnull):
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


def _apply_environment(environment: Mapping[str, str]) -> None:
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
