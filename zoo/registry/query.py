"""What a listing shows: fnmatch patterns on names and on `arch.tag`, filters on task, size, params, GMACs
and top-1, and sorting; per model (its first matching weight set) or per weight set (timm's pretrained view).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from zoo.errors import UserInputError
from zoo.registry.records import TASKS, ModelEntry, Selection, WeightSet

SORT_KEYS = ("name", "params", "gmacs", "top1")
_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}
_COUNT = re.compile(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmgb]?)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    """A listing's patterns and filters; None means no bound. Parameters are counts, GMACs and top-1 numbers."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    family: str | None = None
    task: str | None = None
    pretrained: bool = False
    input_size: tuple[int, ...] | None = None  # (H, W), or a whole input_size to match exactly
    min_params: float | None = None
    max_params: float | None = None
    min_gmacs: float | None = None
    max_gmacs: float | None = None
    min_top1: float | None = None
    max_top1: float | None = None
    sort: str | None = None  # one of SORT_KEYS; None keeps registration order
    reverse: bool = False

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in (*TASKS, "quantized"):
            raise UserInputError(f"unknown task {self.task!r}; tasks: {', '.join(TASKS)} (and quantized)")
        if self.sort is not None and self.sort not in SORT_KEYS:
            raise UserInputError(f"cannot sort by {self.sort!r}; sort by one of: {', '.join(SORT_KEYS)}")

    @property
    def needs_weights(self) -> bool:
        """Whether only weight sets can pass (a filter on what only weights have, or `pretrained`)."""
        bounds = (self.min_gmacs, self.max_gmacs, self.min_top1, self.max_top1, self.input_size)
        return self.pretrained or any(b is not None for b in bounds)


def parse_count(text: str | float | int | None, what: str = "parameters") -> float | None:
    """`25M`, `1.5B`, `500k`, `3e6` or a plain number as a number (None stays None)."""
    if text is None or isinstance(text, (int, float)):
        return text
    match = _COUNT.fullmatch(text.replace("_", "").replace(",", ""))
    if not match:
        raise UserInputError(f"{what} {text!r} is not a number; write e.g. 25M, 1.5B, 500k or 3e6")
    return float(match.group(1)) * _SUFFIXES[match.group(2).lower()]


def parse_input_size(text: str | None) -> tuple[int, ...] | None:
    """`224` as (224, 224); `384x384` as (384, 384); `3x224x224` or `3x16x112x112` as that whole size."""
    if text is None:
        return None
    parts = text.lower().replace("*", "x").split("x")
    if not all(p.strip().isdigit() for p in parts) or len(parts) > 4:
        raise UserInputError(f"input size {text!r}: write 224, 384x384, 3x224x224 or 3x16x112x112")
    numbers = tuple(int(p) for p in parts)
    return numbers * 2 if len(numbers) == 1 else numbers


def model_keys(entry: ModelEntry) -> tuple[str, ...]:
    """The names a pattern can match for a model: name, `family:name`, aliases."""
    return (entry.name, entry.qualified_name, *entry.aliases)


def weight_keys(entry: ModelEntry, weights: WeightSet) -> list[str]:
    """The names a pattern can match for a weight set: every model key with `.tag` or `.ALIAS`."""
    return [f"{key}.{tag}" for key in model_keys(entry) for tag in (weights.tag, *weights.aliases)]


def _matches(patterns: Iterable[str], keys: Iterable[str]) -> bool:
    keys = list(keys)
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns for key in keys)


def _in_bounds(value: float | None, low: float | None, high: float | None) -> bool:
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


def _size_matches(size: tuple[int, ...] | None, wanted: tuple[int, ...] | None) -> bool:
    if wanted is None:
        return True
    if size is None:
        return False
    return size == wanted if len(wanted) > 2 else tuple(size[-2:]) == wanted


def _entry_passes(entry: ModelEntry, query: Query) -> bool:
    if query.family is not None and entry.family != query.family:
        return False
    if query.task is not None and query.task != entry.task and query.task not in entry.tags:
        return False
    return not query.exclude or not _matches(query.exclude, model_keys(entry))


def _weights_pass(entry: ModelEntry, weights: WeightSet, query: Query) -> bool:
    if query.include or query.exclude:
        keys = weight_keys(entry, weights)
        if query.include and not _matches(query.include, [*model_keys(entry), *keys]):
            return False
        if _matches(query.exclude, keys):
            return False
    return (
        _in_bounds(weights.params or entry.params, query.min_params, query.max_params)
        and _in_bounds(weights.gmacs, query.min_gmacs, query.max_gmacs)
        and _in_bounds(weights.top1, query.min_top1, query.max_top1)
        and _size_matches(weights.input_size, query.input_size)
    )


def _bare_entry_passes(entry: ModelEntry, query: Query) -> bool:
    """A model without weight sets: only its own names and parameter count can pass it."""
    if query.needs_weights:
        return False
    if query.include and not _matches(query.include, model_keys(entry)):
        return False
    return _in_bounds(entry.params, query.min_params, query.max_params)


def select_models(entries: Iterable[ModelEntry], query: Query) -> list[Selection]:
    """One Selection per matching model, with its first matching weight set (None for a model without)."""
    rows = []
    for entry in entries:
        if not _entry_passes(entry, query):
            continue
        if entry.weights:
            first = next((w for w in entry.weights if _weights_pass(entry, w, query)), None)
            if first is not None:
                rows.append(Selection(entry, first))
        elif _bare_entry_passes(entry, query):
            rows.append(Selection(entry, None))
    return sort_rows(rows, query)


def select_weights(entries: Iterable[ModelEntry], query: Query) -> list[Selection]:
    """One Selection per matching weight set (`timm.list_models(pretrained=True)`'s view)."""
    rows = [
        Selection(entry, weights)
        for entry in entries
        if _entry_passes(entry, query)
        for weights in entry.weights
        if _weights_pass(entry, weights, query)
    ]
    return sort_rows(rows, query)


def row_params(row: Selection) -> int | None:
    return (row.weights.params if row.weights else None) or row.entry.params


def sort_rows(rows: list[Selection], query: Query) -> list[Selection]:
    """Rows by `query.sort`: name, params and GMACs ascending, top-1 best first; unknown values last."""
    if query.sort is None:
        return rows[::-1] if query.reverse else rows
    if query.sort == "name":
        return sorted(rows, key=lambda r: (r.entry.qualified_name, r.name), reverse=query.reverse)
    value = {
        "params": row_params,
        "gmacs": lambda r: r.weights.gmacs if r.weights else None,
        "top1": lambda r: -r.weights.top1 if r.weights and r.weights.top1 is not None else None,
    }[query.sort]
    known = [(value(r), r) for r in rows]
    ordered = sorted((pair for pair in known if pair[0] is not None), key=lambda p: p[0], reverse=query.reverse)
    return [r for _, r in ordered] + [r for v, r in known if v is None]
