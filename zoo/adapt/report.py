"""The adapt report: the load plan grouped for people (`layer1.{0..2}.bn1.*`), every key for scripts.

JSON fields (`AdaptReport.to_dict`, `zoo adapt --json`, `--report FILE`):

- `target`, `source`, `source_file`, `source_sha256`, `target_kwargs`, `init`: what was transplanted.
- `loaded`: target tensors fed (bookkeeping aside); `counts`: outcome -> {params, buffers} (DROPPED counts
  source tensors); `strategies`: matching strategy -> tensors fed by it; `coverage` and `coverage_by_module`:
  tensors and parameter elements fed, overall and per top-level module.
- `groups`: the plan grouped (`layer1.{0..2}.bn1.*`); `keys`: every target key's plan; `dropped`: every
  source key that fed nothing, with why; `notes`: adapters used, norm eps differences.
- `verify`: the proof, or null when not run: `status` (equal, different, inconclusive, skipped), `summary`
  (what was compared at which input: "outputs and 12 stages, input 2x3x64x64"), mode, input_shape, seed,
  max_abs, max_rel, tolerances, each comparison (`kind` output or stage, `degenerate`: why the source's
  value proves nothing), `seeded` (target keys that held one constant and got seeded values in both
  models), `not_compared` (stages that could not be), and `reason` (first difference, fallbacks, notes).
- `still_initial`: target tensors that still hold an initial value after loading, each with `key`,
  `outcome`, `kind` and `evidence`. `kind` "not fed": nothing from the source reached it (MISSING,
  SKIPPED_SHAPE; known from the plan). "default init": it was loaded, yet equals what its module's own
  `reset_parameters()` gives (checked on a blank copy, only for loaded tensors holding one constant, since
  random inits cannot be reproduced): the source never trained it. "constant (heuristic)": loaded, one
  constant throughout, and its module has no `reset_parameters` to check against.
- `output`: the adapted state dict written; `timings`: seconds per phase.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zoo.adapt.initial import InitialTensor
from zoo.adapt.plan import FED, KeyPlan, LoadPlan
from zoo.adapt.verify import VerifyResult
from zoo.files import write_text_atomic

_NUMBER = re.compile(r"^\d+$")


@dataclass
class AdaptReport:
    """Everything about one transplant: what was loaded from where, how, coverage, and the proof."""

    target: str
    source: str
    source_file: str | None = None
    source_sha256: str | None = None
    target_kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = "default"
    plan: LoadPlan = field(default_factory=LoadPlan)
    verify: VerifyResult | None = None
    still_initial: list[InitialTensor] = field(default_factory=list)
    output: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def coverage(self):
        return self.plan.coverage()

    def summary(self) -> dict[str, Any]:
        return {
            "loaded": self.plan.fed_count(),
            "counts": self.plan.counts(),
            "strategies": self.plan.strategies(),
            "coverage": self.plan.coverage().to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with every key of the plan."""
        return {
            "target": self.target,
            "source": self.source,
            "source_file": self.source_file,
            "source_sha256": self.source_sha256,
            "target_kwargs": {
                k: repr(v) if not isinstance(v, int | float | str | bool) else v for k, v in self.target_kwargs.items()
            },
            "init": self.init,
            **self.summary(),
            "coverage_by_module": {m: c.to_dict() for m, c in self.plan.coverage_by_module().items()},
            "groups": group_rows(self.plan),
            "keys": [_key_dict(item) for item in self.plan.keys],
            "dropped": [asdict(item) for item in self.plan.dropped],
            "notes": list(self.plan.notes),
            "verify": self.verify.to_dict() if self.verify else None,
            "still_initial": [t.to_dict() for t in self.still_initial],
            "output": self.output,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }

    def write_json(self, path: str | Path) -> Path:
        return write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2, default=str) + "\n")


def _key_dict(item: KeyPlan) -> dict[str, Any]:
    data = asdict(item)
    data["kind"] = "param" if item.is_param else "buffer"
    data["bookkeeping"] = item.bookkeeping
    return data


def _render(values: list[str]) -> str:
    numbers = sorted({int(v) for v in values})
    if len(numbers) == 1:
        return str(numbers[0])
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{{{numbers[0]}..{numbers[-1]}}}"
    return "{" + ",".join(map(str, numbers)) + "}"


def group_keys(keys: list[str]) -> list[str]:
    """`layer1.0.bn1.weight`, `layer1.1.bn1.bias`, ... as `layer1.{0..1}.bn1.*`, in first-seen order."""
    return list(_grouped(keys))


def _grouped(keys: list[str]) -> dict[str, list[int]]:
    """Each grouped pattern with the positions in `keys` of the keys it stands for."""
    modules: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        modules.setdefault(key.rpartition(".")[0], []).append(index)
    groups: dict[tuple, list[tuple[list[str], list[int]]]] = {}
    for module, indices in modules.items():
        parts = module.split(".") if module else []
        template = tuple("#" if _NUMBER.match(p) else p for p in parts)
        leaf_text = keys[indices[0]].rpartition(".")[2] if len(indices) == 1 else "*"
        groups.setdefault((template, leaf_text), []).append((parts, indices))
    result: dict[str, list[int]] = {}
    for (template, leaf_text), members in groups.items():
        parts = [_render([m[0][i] for m in members]) if token == "#" else token for i, token in enumerate(template)]
        result.setdefault(".".join([*parts, leaf_text]), []).extend(i for m in members for i in m[1])
    return result


def group_rows(plan: LoadPlan) -> list[dict[str, Any]]:
    """One row per grouped pattern: outcome, strategy, target keys, source keys, tensors, elements, detail."""
    buckets: dict[tuple, list[KeyPlan]] = {}
    for item in plan.keys:
        detail = "copy" if item.outcome in FED and (item.operation or "copy").startswith("copy") else item.operation
        key = (item.outcome, item.strategy or "", detail or "", item.init or "", item.note or "")
        buckets.setdefault(key, []).append(item)
    rows = []
    for (outcome, strategy, detail, init, note), items in buckets.items():
        for pattern, indices in _grouped([i.key for i in items]).items():
            members = [items[i] for i in indices]
            sources = [i.source for i in members if i.source]
            rows.append(
                {
                    "outcome": outcome,
                    "strategy": strategy,
                    "target": pattern,
                    "source": ", ".join(group_keys(sources)),
                    "tensors": len(members),
                    "elements": sum(i.numel for i in members),
                    "detail": "; ".join(filter(None, (detail, init, note))),
                }
            )
    reasons: dict[str, list[str]] = {}
    for dropped in plan.dropped:
        reasons.setdefault(dropped.reason, []).append(dropped.key)
    for reason, keys in reasons.items():
        for pattern, indices in _grouped(keys).items():
            rows.append(
                {
                    "outcome": "DROPPED",
                    "strategy": "",
                    "target": "",
                    "source": pattern,
                    "tensors": len(indices),
                    "elements": None,
                    "detail": reason,
                }
            )
    return rows
