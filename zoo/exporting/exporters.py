"""Turn a module into an ONNX ModelProto with the dynamo or the TorchScript exporter, or `auto`.

`auto` policy: dynamo first, TorchScript when dynamo fails (the reason is recorded). Measured on this
project's 2-core CPU (benchmarks/export.py): dynamo costs about 3-5 s more per model, but it is the
exporter PyTorch keeps developing, gives a truly symbolic batch dimension (a model that bakes its batch
size in fails here rather than at inference time), and exports attention under `no_grad`, where the
TorchScript exporter fails on vit_b_16 (`aten::_native_multi_head_attention`). TorchScript tracing
catches what dynamo cannot capture (data-dependent Python control flow), at the price of tracing one path.
"""

from __future__ import annotations

import contextlib
import io
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.exporting.errors import ExportError
from zoo.exporting.torchlib_cache import reused_registry

if TYPE_CHECKING:
    import onnx
    import torch

EXPORTERS = ("auto", "dynamo", "torchscript")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DYNAMO_OP = re.compile(r"No ONNX function found for <OpOverload\(op='([^']+)'")
_TS_OP = re.compile(r"(?:Exporting the operator|Couldn't export operator) '?([\w:.]+)'?")
_TS_QUANTIZED_OP = re.compile(r"missing support for quantized `([\w:.]+)`")  # quantized_shufflenet_v2's Slice


@dataclass
class Exported:
    """An exported ModelProto and how it was made; `seconds` is the exporter's call, `optimize_seconds` the
    part of it spent in the dynamo exporter's graph optimisation (0 for TorchScript)."""

    proto: onnx.ModelProto
    exporter: str
    opset: int
    fallback_reason: str | None
    seconds: float
    optimize_seconds: float = 0.0


@dataclass
class ExportSpec:
    """What to export: example inputs (one tensor per graph input), symbolic dims, names and opset.

    `input_axes` gives {axis: name} for each input (the same name is the same dimension across inputs);
    `output_axes` the symbolic dims every output shares (the batch, or a detector's detection count).
    """

    example: tuple[torch.Tensor, ...]
    input_axes: list[dict[int, str]]
    output_axes: dict[int, str]
    input_names: list[str]
    output_names: list[str]
    opset: int | None = None


def export_module(model: torch.nn.Module, spec: ExportSpec, exporter: str = "auto") -> Exported:
    """Export `model` with `exporter` (`auto`: dynamo, then TorchScript on failure)."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, not {exporter!r}")
    if exporter == "torchscript":
        try:
            return _timed(_torchscript, model, spec, None)
        except Exception as ts_exc:  # noqa: BLE001
            raise _export_error(spec, {"torchscript": ts_exc}) from ts_exc
    try:
        return _timed(_dynamo, model, spec, None)
    except Exception as dynamo_exc:  # noqa: BLE001 - any capture failure means: try the other exporter
        if exporter == "dynamo":
            raise _export_error(spec, {"dynamo": dynamo_exc}) from dynamo_exc
        reason = f"dynamo: {summarise(dynamo_exc)}"
        try:
            return _timed(_torchscript, model, spec, reason)
        except Exception as ts_exc:  # noqa: BLE001
            raise _export_error(spec, {"dynamo": dynamo_exc, "torchscript": ts_exc}) from ts_exc


def summarise(exc: BaseException) -> str:
    """One line saying why an exporter failed (the exception summary torch.onnx buries in its message)."""
    text = _ANSI.sub("", str(exc))
    match = re.search(r"<class '([^']+)'>: ([^\n]+)", text)
    if match:
        return f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"
    missing = _TS_QUANTIZED_OP.search(text)
    if missing:
        return f"{type(exc).__name__}: no quantized {missing.group(1)} (it expected a quantized tensor)"
    if isinstance(exc, ModuleNotFoundError):
        return f"{exc} (pip install onnxscript to use the dynamo exporter)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}"[:500]


def unsupported_ops(exc: BaseException) -> list[str]:
    """Operator names an exporter's error says it cannot translate."""
    text = _ANSI.sub("", str(exc))
    quantized = {f"quantized {op}" for op in _TS_QUANTIZED_OP.findall(text)}
    return sorted(set(_DYNAMO_OP.findall(text)) | {op.strip("'") for op in _TS_OP.findall(text)} | quantized)


def _export_error(spec: ExportSpec, failures: dict[str, BaseException]) -> ExportError:
    ops = sorted({op for exc in failures.values() for op in unsupported_ops(exc)})
    reasons = "; ".join(f"{name}: {summarise(exc)}" for name, exc in failures.items())
    if ops:
        message = (
            f"operator {', '.join(ops)} is not supported by the ONNX exporters tried ({reasons}); "
            "replace it in the model, or register a custom translation"
        )
    else:
        message = f"export failed ({reasons}); set ZOO_DEBUG=1 for the traceback"
    return ExportError(message, tuple(ops))


def _timed(function, model, spec: ExportSpec, reason: str | None) -> Exported:
    start = time.perf_counter()
    proto, name, optimize_seconds = function(model, spec)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    return Exported(proto, name, opset, reason, time.perf_counter() - start, optimize_seconds)


@contextlib.contextmanager
def _quiet():
    """torch.onnx prints progress and graphs to stdout and warns freely: keep the CLI's output clean."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _dynamo(model, spec: ExportSpec) -> tuple[onnx.ModelProto, str, float]:
    import torch

    dims: dict[str, Any] = {}

    def dim(name: str):
        return dims.setdefault(name, torch.export.Dim(name, min=1))

    shapes = tuple({axis: dim(name) for axis, name in axes.items()} or None for axes in spec.input_axes)
    with _quiet(), torch.no_grad(), reused_registry():
        program = torch.onnx.export(
            model,
            spec.example,
            dynamo=True,
            verbose=False,
            optimize=False,
            input_names=spec.input_names,
            output_names=spec.output_names,
            opset_version=spec.opset,
            dynamic_shapes=shapes if dims else None,
        )
        start = time.perf_counter()
        program.optimize()
        proto = program.model_proto
        optimize_seconds = time.perf_counter() - start
    fixed = fixed_axes(proto, spec)
    if fixed:  # torch.onnx's fallback capture strategies specialise a dim that torch.export refused (RAFT's batch)
        raise ValueError(f"the dynamo exporter fixed {', '.join(fixed)}, not dynamic as asked")
    return proto, "dynamo", optimize_seconds


def fixed_axes(proto: onnx.ModelProto, spec: ExportSpec) -> list[str]:
    """The symbolic dims `spec` asked for that the exported graph's inputs have as numbers: `image2 axis 0
    (batch) at 2`, each."""
    fixed = []
    for graph_input, axes in zip(proto.graph.input, spec.input_axes, strict=False):
        dims = graph_input.type.tensor_type.shape.dim
        for axis, name in axes.items():
            if axis < len(dims) and dims[axis].HasField("dim_value"):
                fixed.append(f"{graph_input.name} axis {axis} ({name}) at {dims[axis].dim_value}")
    return fixed


def _torchscript(model, spec: ExportSpec) -> tuple[onnx.ModelProto, str, float]:
    import onnx
    import torch

    dynamic_axes = {name: dict(axes) for name, axes in zip(spec.input_names, spec.input_axes, strict=True) if axes}
    if spec.output_axes:
        dynamic_axes |= {name: dict(spec.output_axes) for name in spec.output_names}
    with tempfile.TemporaryDirectory(prefix="zoo-export-") as tmp, _quiet(), torch.no_grad():
        path = Path(tmp) / "model.onnx"  # a file, not bytes: models over 2 GB need external data
        torch.onnx.export(
            model,
            spec.example,
            str(path),
            dynamo=False,
            input_names=spec.input_names,
            output_names=spec.output_names,
            opset_version=spec.opset,
            dynamic_axes=dynamic_axes or None,
        )
        return onnx.load(str(path)), "torchscript", 0.0
