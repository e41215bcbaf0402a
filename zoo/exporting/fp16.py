"""Half-precision conversion after export, keeping float32 inputs and outputs (Casts at the edges)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:
    import onnx


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and compute in float16, graph inputs and outputs still float32 (about half the file size)."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise ZooError("--fp16 needs onnxconverter-common: pip install onnxconverter-common") from None
    with warnings.catch_warnings():  # one "will be truncated" warning per tiny weight: the verification judges
        warnings.simplefilter("ignore")
        return float16.convert_float_to_float16(proto, keep_io_types=True, disable_shape_infer=False)
