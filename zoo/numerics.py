"""Numeric rules shared by the capabilities that compare outputs (export verification, adapt proofs)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DEGENERATE_SPREAD = 1e-6  # relative to max(1, max |x|)
EXPLODED = 1e6  # no trained vision model's logits, boxes (pixels) or flows come near this


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
    """The largest magnitude when a floating-point output is non-finite or beyond 1e6, else None.

    A random init whose activations grow layer after layer (torchvision's inception_v3: logits of ~2.6e12)
    leaves float32 rounding errors of ~1e5 in the outputs: no tolerance on them is meaningful.
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
