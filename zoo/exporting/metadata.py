"""zoo's facts about an exported model, stored in the ONNX file's metadata_props (`zoo.*` keys)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx


def metadata_for(
    model: str,
    weights: str,
    weights_sha256: str | None,
    input_shape: list[int],
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
    exporter: str,
    opset: int,
    fp16: bool,
) -> dict[str, str]:
    """The `zoo.*` metadata entries for one export; values are strings (lists as JSON)."""
    from zoo import __version__

    data: dict[str, Any] = {
        "zoo.version": __version__,
        "zoo.model": model,
        "zoo.weights": weights,
        "zoo.weights_sha256": weights_sha256 or "",
        "zoo.input_shape": json.dumps(input_shape),
        "zoo.mean": json.dumps(list(mean)) if mean else "",
        "zoo.std": json.dumps(list(std)) if std else "",
        "zoo.exporter": exporter,
        "zoo.opset": str(opset),
        "zoo.precision": "fp16" if fp16 else "fp32",
    }
    return {key: str(value) for key, value in data.items()}


def set_metadata(proto: onnx.ModelProto, entries: Mapping[str, str]) -> None:
    """Replace existing entries of the same keys, keep the others; also name the producer."""
    from zoo import __version__

    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "zoo", __version__


def read_metadata(path: str) -> dict[str, str]:
    """The metadata_props of an ONNX file, without loading its weights."""
    import onnx

    proto = onnx.load(path, load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}
