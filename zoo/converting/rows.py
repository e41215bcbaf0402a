"""A manifest row: what converting one model gave, built from zoo.export's report or from the failure."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from zoo.converting.planning import ConvertTask
from zoo.converting.worker import GIB

# Fields that differ between two runs of the same conversion (compare manifests without them).
VOLATILE = ("started_at", "finished_at", "wall_seconds", "seconds", "host", "worker")
ERROR_LENGTH = 400
SEED = 0


def base_row(task: ConvertTask) -> dict[str, Any]:
    output = Path(task.output)
    return {
        "name": task.name,
        "task": task.family_task,
        "output": f"{output.parent.name}/{output.name}",
        "log": f"logs/{output.parent.name}/{output.stem}.log",
        "fingerprint": task.fingerprint,
        "inputs": dict(task.inputs),
        "status": "failed",
        "error_class": None,
        "error": None,
        "host": socket.gethostname(),
    }


def failure_row(task: ConvertTask, status: str, error_class: str, message: str) -> dict[str, Any]:
    row = base_row(task)
    row.update(status=status, error_class=error_class, error=message[:ERROR_LENGTH], finished_at=time.time())
    return row


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:ERROR_LENGTH]


def is_out_of_memory(exc: BaseException, capped: bool = False) -> bool:
    """A MemoryError, torch's allocator refusing (a RuntimeError) or a C++ `std::bad_alloc` (onnxruntime's
    session for vit_h_14 under a 10.6 GiB cap), here or in what caused `exc`; with an address-space cap
    (`capped`), also protobuf failing to serialize a model (its allocation refused: vit_l_16, 1.2 GB, failed
    so under a 10.6 GiB cap and exports alone)."""
    chain: list[BaseException] = []
    while exc is not None and exc not in chain and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return any(
        isinstance(e, MemoryError)
        or "can't allocate memory" in str(e)
        or "std::bad_alloc" in str(e)
        or (capped and type(e).__name__ == "EncodeError" and "serialize" in str(e))
        for e in chain
    )


def report_fields(report: Any) -> dict[str, Any]:
    """The figures of a zoo.exporting.ExportReport that the manifest keeps."""
    verification = report.verification
    return {
        "weights": report.weights,
        "weights_sha256": report.weights_sha256,
        "exporter": report.exporter,
        "opset": report.opset,
        "fallback_reason": report.fallback_reason,
        "simplified": report.simplified,
        "nodes_before": report.nodes_before,
        "nodes_after": report.nodes_after,
        "size_bytes": report.size_bytes,
        "verified": report.verified,
        "max_abs_diff": verification.max_abs if verification is not None else None,
        "min_cosine": verification.min_cosine if verification is not None else None,
        "runtimes": verification.runtime_summary() if verification is not None else None,
        "seconds": {key: round(value, 3) for key, value in report.seconds.items()},
        "notes": list(report.notes),
    }


def convert_here(task: ConvertTask, on_stage=None) -> dict[str, Any]:
    """Export and verify `task` in this process (a worker); never raises, the row says what happened."""
    row = base_row(task)
    try:
        import torch

        from zoo.exporting import VerificationError, export

        torch.manual_seed(SEED)  # random weights (`--weights none`) come out the same on every run and executor

        report = export(task.name, task.output, progress=on_stage, **task.options.to_kwargs())
    except VerificationError as exc:
        row.update(
            report_fields(exc.report), status="verify-failed", error_class=type(exc).__name__, error=first_line(exc)
        )
    except Exception as exc:  # noqa: BLE001 - any failure of one model is recorded, the batch goes on
        if is_out_of_memory(exc, capped=task.address_space_capped):
            cap = f"{task.max_memory / GIB:.1f} GiB" if task.max_memory else "the machine's memory"
            message = f"out of memory under the worker's cap of {cap} (--max-memory): {first_line(exc)}"
            row.update(status="memory", error_class=type(exc).__name__, error=message[:ERROR_LENGTH])
        else:
            row.update(status="failed", error_class=type(exc).__name__, error=first_line(exc))
    else:
        row.update(report_fields(report), status="ok")
        row["onnx_bytes"] = Path(task.output).stat().st_size
    row["finished_at"] = time.time()
    return row


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without the fields that vary from run to run."""
    return {key: value for key, value in row.items() if key not in VOLATILE}
