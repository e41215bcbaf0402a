"""Numeric rules shared by the capabilities that compare outputs (export verification, adapt proofs)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DEGENERATE_SPREAD = 1e-6  # relative to max(1, max |x|)
EXPLODED = 1e3  # trained logits and flows (pixels) stay below it; at this scale float32 rounding nears 1e-4


def is_degenerate(outputs: Iterable[np.ndarray]) -> bool:
    """True when agreement with these outputs would prove little: one of them is empty, or a floating-point
    output of several values is near zero or constant (spread within 1e-6 of its scale).

    The one degenerate-output rule: a random init that makes a classifier's logits ~1e-9, a detector that
    finds nothing, a quantized model whose outputs are all one value.
    """
    import numpy as np

    for output in outputs:
        array = np.asarray(output)
        if array.size == 0:
            return True
        if array.size < 2 or not np.issubdtype(array.dtype, np.floating):
            continue
        finite = array[np.isfinite(array)]
        if finite.size < 2:
            return True
        scale = max(1.0, float(np.abs(finite).max()))
        if float(np.ptp(finite)) <= DEGENERATE_SPREAD * scale:
            return True
    return False


def explodes(outputs: Iterable[np.ndarray]) -> float | None:
    """The largest magnitude when a floating-point output is non-finite or beyond 1e3, else None.

    A random init whose activations grow layer after layer (torchvision's inception_v3: logits of ~2.6e12;
    fcn_resnet101: ~7e4) leaves float32 rounding errors beyond any absolute tolerance on near-zero values.
    Not for coordinates (a detector's boxes are pixels).
    """
    import numpy as np

    for output in outputs:
        array = np.asarray(output)
        if array.size == 0 or not np.issubdtype(array.dtype, np.floating):
            continue
        if not np.isfinite(array).all():
            return float("inf")
        largest = float(np.abs(array).max())
        if largest > EXPLODED:
            return largest
    return None


def grid_step(outputs: Iterable[np.ndarray], least: int = 16) -> float | None:
    """The step of the grid that dequantized outputs lie on (zero point + k x scale: one int8 step), or None
    when some output has fewer than `least` distinct values or its values lie on no common grid."""
    import numpy as np

    steps = []
    for output in outputs:
        values = np.unique(np.asarray(output, np.float64))
        values = values[np.isfinite(values)]
        if values.size < least:
            return None
        gaps = np.diff(values)
        step = float(gaps.min())
        if step <= 0 or not np.allclose(gaps / step, np.round(gaps / step), rtol=0, atol=1e-3):
            return None
        steps.append(step)
    return max(steps) if steps else None
