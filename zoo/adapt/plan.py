"""The load plan: for every target key, which source key fed it, how, and with what outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Outcomes of target keys.
LOADED = "LOADED"  # same name, same shape
RENAMED = "RENAMED"  # fed by a source key of another name (remap, rule, prefix, structure)
RESHAPED = "RESHAPED"  # same number of elements, another shape (Linear as 1x1 conv, (C,1,1) vs (C,))
ADAPTED = "ADAPTED"  # changed by a named adapter (in_chans)
SKIPPED_SHAPE = "SKIPPED_SHAPE"  # a source key matched but its shape does not fit: initialised instead
MISSING = "MISSING"  # nothing fed it: initialised by the init policy
# Outcome of source keys.
DROPPED = "DROPPED"  # fed no target key

FED = (LOADED, RENAMED, RESHAPED, ADAPTED)
TARGET_OUTCOMES = (LOADED, RENAMED, RESHAPED, ADAPTED, SKIPPED_SHAPE, MISSING)

# Matching strategies, in ranked order.
EXACT, REMAP, RULE, PREFIX, STRUCTURE = "exact", "remap", "rule", "prefix", "structure"
STRATEGIES = (EXACT, REMAP, RULE, PREFIX, STRUCTURE)

BOOKKEEPING = "num_batches_tracked"


def is_bookkeeping(key: str) -> bool:
    """`num_batches_tracked` counts training steps; eval never reads it, so it is never a problem."""
    return key.rsplit(".", 1)[-1] == BOOKKEEPING


@dataclass
class KeyPlan:
    """What happens to one target tensor."""

    key: str
    shape: tuple[int, ...]
    numel: int
    is_param: bool
    outcome: str = MISSING
    source: str | None = None
    source_shape: tuple[int, ...] | None = None
    strategy: str | None = None
    rule: str | None = None  # the remap name, regex rule or prefix pair that matched
    operation: str | None = None  # "copy", "reshape (1000, 2048, 1, 1) -> (1000, 2048)", "in_chans 3 -> 1 (sum)"
    init: str | None = None  # for MISSING / SKIPPED_SHAPE: how it was initialised
    offset: float | None = None  # added to the source value (a BatchNorm eps difference folded into running_var)
    note: str | None = None

    @property
    def fed(self) -> bool:
        return self.outcome in FED

    @property
    def bookkeeping(self) -> bool:
        return is_bookkeeping(self.key)


@dataclass
class DroppedKey:
    """A source tensor that fed no target tensor."""

    key: str
    shape: tuple[int, ...]
    reason: str = "no target key matched"
    outcome: str = DROPPED


@dataclass
class Coverage:
    """How much of (a part of) the target was fed, by tensor count and by element count."""

    tensors_fed: int = 0
    tensors: int = 0
    params_fed: int = 0  # elements of parameters (not buffers)
    params: int = 0

    @property
    def by_tensors(self) -> float:
        return self.tensors_fed / self.tensors if self.tensors else 1.0

    @property
    def by_params(self) -> float:
        return self.params_fed / self.params if self.params else 1.0

    def add(self, item: KeyPlan) -> None:
        if item.bookkeeping:
            return
        self.tensors += 1
        self.tensors_fed += item.fed
        if item.is_param:
            self.params += item.numel
            self.params_fed += item.numel if item.fed else 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "by_tensors": round(self.by_tensors, 6), "by_params": round(self.by_params, 6)}


@dataclass
class LoadPlan:
    """Every target key's plan, every dropped source key, and notes (eps differences, adapters, ...)."""

    keys: list[KeyPlan] = field(default_factory=list)
    dropped: list[DroppedKey] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_key(self) -> dict[str, KeyPlan]:
        return {item.key: item for item in self.keys}

    def counts(self) -> dict[str, dict[str, int]]:
        """Outcome -> {"params": n, "buffers": n}; DROPPED counts source tensors."""
        result = {name: {"params": 0, "buffers": 0} for name in (*TARGET_OUTCOMES, DROPPED)}
        for item in self.keys:
            result[item.outcome]["params" if item.is_param else "buffers"] += 1
        for item in self.dropped:
            result[DROPPED]["buffers" if is_bookkeeping(item.key) else "params"] += 1
        return result

    def strategies(self) -> dict[str, int]:
        result = dict.fromkeys(STRATEGIES, 0)
        for item in self.keys:
            if item.strategy and item.fed:
                result[item.strategy] += 1
        return result

    def coverage(self) -> Coverage:
        total = Coverage()
        for item in self.keys:
            total.add(item)
        return total

    def coverage_by_module(self) -> dict[str, Coverage]:
        result: dict[str, Coverage] = {}
        for item in self.keys:
            result.setdefault(item.key.split(".", 1)[0], Coverage()).add(item)
        return result

    def fed_count(self) -> int:
        return sum(item.fed and not item.bookkeeping for item in self.keys)
