"""The plain, JSON-ready record of one export: what was exported, how, and how well it matches PyTorch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class OutputCheck:
    """How one ONNX output compares with PyTorch at one input shape."""

    name: str
    shape: list[int]
    max_abs: float
    max_rel: float  # max |onnx - torch| divided by max |torch| (the output's own scale)
    cosine: float
    top1: float | None  # fraction of positions whose argmax over dim 1 agrees; None for 0-d/1-d outputs
    passed: bool
    matched: float | None = None  # detection outputs: the fraction of detections matched (zoo.tasks)
    note: str | None = None  # why it failed beyond the figures (a shape, unmatched detections)


@dataclass
class ShapeCheck:
    """All outputs at one input shape."""

    input_shape: list[int]
    outputs: list[OutputCheck]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)


def _max_abs(checks: list[ShapeCheck]) -> float:
    return max((o.max_abs for c in checks for o in c.outputs), default=0.0)


def _min_cosine(checks: list[ShapeCheck]) -> float:
    return min((o.cosine for c in checks for o in c.outputs), default=1.0)


@dataclass
class RuntimeCheck:
    """One more runtime (`--runtime NAME`) against PyTorch at the same inputs, or why it could not run."""

    name: str
    label: str
    passed: bool
    checks: list[ShapeCheck] = field(default_factory=list)
    error: str | None = None  # the runtime's own message when it could not load or run the model
    seconds: float = 0.0

    @property
    def max_abs(self) -> float:
        return _max_abs(self.checks)

    @property
    def min_cosine(self) -> float:
        return _min_cosine(self.checks)


@dataclass
class Verification:
    """onnxruntime (and each `--runtime`) against PyTorch eval at every checked input."""

    passed: bool
    atol: float
    rtol: float
    provider: str
    reference_device: str
    checks: list[ShapeCheck] = field(default_factory=list)
    degenerate_reference: bool = False  # PyTorch's outputs were empty, near zero or constant (zoo.numerics)
    seeded_weights: int | None = None  # with random weights: the seed of the weights set before exporting
    ort_optimization: str = "all"
    seconds: float = 0.0
    task: str = "classification"
    runtimes: list[RuntimeCheck] = field(default_factory=list)  # beyond onnxruntime

    @property
    def max_abs(self) -> float:
        return _max_abs(self.checks)

    @property
    def min_cosine(self) -> float:
        return _min_cosine(self.checks)

    def runtime_summary(self) -> dict[str, dict[str, Any]]:
        """{runtime: {label, passed, max_abs, min_cosine, error}}, onnxruntime first: a column per runtime."""
        ort_passed = all(c.passed for c in self.checks)
        summary = {
            "onnxruntime": {
                "label": f"onnxruntime ({self.provider})",
                "passed": ort_passed,
                "max_abs": self.max_abs,
                "min_cosine": self.min_cosine,
                "error": None,
            }
        }
        for runtime in self.runtimes:
            summary[runtime.name] = {
                "label": runtime.label,
                "passed": runtime.passed,
                "max_abs": runtime.max_abs if runtime.checks else None,
                "min_cosine": runtime.min_cosine if runtime.checks else None,
                "error": runtime.error,
            }
        return summary


@dataclass
class ExportReport:
    """Everything `zoo export` did: `to_dict()` gives the JSON `--json` prints and `zoo convert` records."""

    model: str
    output: str
    exporter: str = ""
    opset: int = 0
    fallback_reason: str | None = None  # why `auto` did not use the dynamo exporter
    weights: str = "none"
    weights_sha256: str | None = None
    input_shape: list[int] = field(default_factory=list)
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    device: str = "cpu"
    fp16: bool = False
    simplified: bool = False
    simplify_note: str | None = None  # why the unsimplified model was kept, when it was
    nodes_before: int = 0
    nodes_after: int = 0
    external_data: str | None = None  # the data file's name next to the model, when weights are external
    size_bytes: int = 0
    verification: Verification | None = None
    task: str = "classification"
    quantized: bool = False
    # Stage timings: imports (torch, onnx, onnxruntime; ~0 in a warm process), build, reference, export (the
    # exporter's call; `optimize` is the dynamo exporter's graph optimisation within it), simplify, fp16,
    # session (onnxruntime session creation), verify, verify:NAME (each --runtime, loading included), write, total.
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what this family cannot do, seeded weights, fallbacks

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.passed

    @property
    def overhead_seconds(self) -> float:
        """Everything but the exporter's call (building, references, simplifying, verifying, writing)."""
        return self.seconds.get("total", 0.0) - self.seconds.get("export", 0.0)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of plain values (json.dumps-ready), with summary figures of the verification."""
        data = asdict(self)
        if self.verification is not None:
            data["verification"]["max_abs"] = self.verification.max_abs
            data["verification"]["min_cosine"] = self.verification.min_cosine
            for check, raw in zip(self.verification.checks, data["verification"]["checks"], strict=True):
                raw["passed"] = check.passed
            summary = self.verification.runtime_summary()
            for raw in data["verification"]["runtimes"]:
                summary[raw["name"]] |= {"checks": raw["checks"], "seconds": raw["seconds"]}
            data["verification"]["runtimes"] = summary
        data["verified"] = self.verified
        return data
