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


@dataclass
class ShapeCheck:
    """All outputs at one input shape."""

    input_shape: list[int]
    outputs: list[OutputCheck]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)


@dataclass
class Verification:
    """onnxruntime against PyTorch eval at every checked input shape."""

    passed: bool
    atol: float
    rtol: float
    provider: str
    reference_device: str
    checks: list[ShapeCheck] = field(default_factory=list)
    degenerate_reference: bool = False  # the model's own outputs were near zero or constant
    seeded_weights: int | None = None  # seed of the non-trivial weights verified instead, when degenerate
    ort_optimization: str = "all"
    seconds: float = 0.0

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for c in self.checks for o in c.outputs), default=0.0)

    @property
    def min_cosine(self) -> float:
        return min((o.cosine for c in self.checks for o in c.outputs), default=1.0)


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
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.passed

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of plain values (json.dumps-ready), with summary figures of the verification."""
        data = asdict(self)
        if self.verification is not None:
            data["verification"]["max_abs"] = self.verification.max_abs
            data["verification"]["min_cosine"] = self.verification.min_cosine
            for check, raw in zip(self.verification.checks, data["verification"]["checks"], strict=True):
                raw["passed"] = check.passed
        data["verified"] = self.verified
        return data
