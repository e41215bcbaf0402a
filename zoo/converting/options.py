"""What `zoo convert` passes to `zoo.export` for every model of a batch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExportOptions:
    """The `zoo export` keyword arguments applied to each model of a batch (see zoo.exporting.export)."""

    weights: str | None = None  # None: each model's default weight set; "none": random; a tag or a file
    input_shape: tuple[int, ...] | None = None
    dynamic_batch: bool = True
    dynamic_hw: bool = False
    opset: int | None = None
    exporter: str = "auto"
    simplify: bool = True
    fp16: bool = False
    device: str = "cpu"
    verify: bool = True
    atol: float | None = None
    rtol: float | None = None
    external_data: str = "auto"
    runtimes: tuple[str, ...] = ()  # verify in these runtimes too (`--runtime`), beyond onnxruntime
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `zoo.exporting.export(model, output, **kwargs)`."""
        data = asdict(self)
        data["kwargs"] = dict(self.kwargs) or None
        return data

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples as lists), the form recorded in the manifest's fingerprint."""
        data = asdict(self)
        data["input_shape"] = list(self.input_shape) if self.input_shape else None
        data["runtimes"] = list(self.runtimes)
        return data
