"""Parameter and buffer statistics: totals, trainable share and size in MB by dtype."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ParamStats:
    """What a model's state holds. Buffers are state_dict entries that are not parameters."""

    total: int
    trainable: int
    buffers: int  # elements in persistent buffers (e.g. BatchNorm running stats)
    size_mb_by_dtype: dict[str, float] = field(default_factory=dict)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def size_mb(self) -> float:
        return sum(self.size_mb_by_dtype.values())


def param_stats(model: Any) -> ParamStats:
    """Count `model`'s parameters (shared ones once) and state_dict buffers; works on meta tensors."""
    params = list(model.parameters())
    param_ids = {id(p) for p in params}
    sizes: dict[str, int] = defaultdict(int)
    for p in params:
        sizes[_dtype(p)] += p.numel() * p.element_size()
    buffers = 0
    seen: set[int] = set()
    for tensor in model.state_dict(keep_vars=True).values():
        if id(tensor) in param_ids or id(tensor) in seen or not hasattr(tensor, "numel"):
            continue
        seen.add(id(tensor))
        buffers += tensor.numel()
        sizes[_dtype(tensor)] += tensor.numel() * tensor.element_size()
    return ParamStats(
        total=sum(p.numel() for p in params),
        trainable=sum(p.numel() for p in params if p.requires_grad),
        buffers=buffers,
        size_mb_by_dtype={dtype: size / 1e6 for dtype, size in sorted(sizes.items())},
    )


def _dtype(tensor: Any) -> str:
    return str(tensor.dtype).removeprefix("torch.")
