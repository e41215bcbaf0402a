"""Numeric rules shared by the capabilities that compare outputs (export verification, adapt proofs)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

DEGENERATE_SPREAD = 1e-6  # relative to max(1, max |x|)


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
