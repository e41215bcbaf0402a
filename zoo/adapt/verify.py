"""The numerical proof: run source and target on seeded inputs in eval mode and compare what must agree.

A probe names what to read on one side: "" the whole output, an int an item of the output list/dict,
"name" a submodule's output, "<name" a submodule's input. Target modules may declare their pairs with
`zoo_verify_pairs() -> [(source_probe, target_probe), ...]` (a backbone: stages vs its feature maps).
Besides those, the caller passes the transplanted stages (`zoo.adapt.stages`): each is compared too.

Two different seeded images go through both models as one batch of two. A reference output that says nothing
(one constant throughout, or the same for both images, as behind a zero-initialised head) never counts as
equal: it makes the result "inconclusive" unless some comparison already differs (a stage whose output
says nothing is marked so, and proves nothing either). The
caller gives constant tensors seeded values in both models before the proof (`seeded_values`), so that a
fresh model's zero head or all-ones BatchNorms cannot hide a wrong transplant.

The proof runs under `torch.inference_mode` on a small input first (64x64 for a 224x224 model: both sides
compute the same function at any size, at a twelfth of the cost); a model that refuses it (a ViT with a
fixed patch grid, a net whose pooling needs more pixels) is compared at its full input size instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

Probe = str | int

EQUAL, DIFFERENT, INCONCLUSIVE, SKIPPED = "equal", "different", "inconclusive", "skipped"
BATCH = 2  # two different images: an output that does not depend on its input shows


@dataclass
class Comparison:
    source: str
    target: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    passed: bool
    kind: str = "output"  # "output" (what the mode names) or "stage" (a transplanted module's output)
    degenerate: str = ""  # why the source's value proves nothing ("" when it does)


@dataclass
class VerifyResult:
    """What was compared, the largest differences, and the verdict (`status`)."""

    mode: str  # "outputs", "features", "head input", or "skipped"
    passed: bool
    max_abs: float = 0.0
    max_rel: float = 0.0
    rtol: float = 1e-4
    atol: float = 1e-5
    input_shape: tuple[int, ...] = ()  # the input actually compared
    seed: int = 0
    comparisons: list[Comparison] = field(default_factory=list)
    reason: str = ""
    status: str = ""  # EQUAL, DIFFERENT, INCONCLUSIVE or SKIPPED
    seeded: list[str] = field(default_factory=list)  # target keys given seeded values in both models
    not_compared: list[str] = field(default_factory=list)  # stage pairs that could not be compared, with why

    def __post_init__(self) -> None:
        if not self.status:
            self.status = SKIPPED if self.mode == SKIPPED else (EQUAL if self.passed else DIFFERENT)

    @property
    def conclusive(self) -> bool:
        return self.status != INCONCLUSIVE

    def summary(self) -> str:
        """`outputs and 12 stages, input 2x3x64x64` - what was compared, in words."""
        outputs = sum(c.kind == "output" for c in self.comparisons)
        stages = len(self.comparisons) - outputs
        what = self.mode if outputs else "nothing of the output"
        if stages:
            what += f" and {stages} stage{'s' * (stages != 1)}"
        return f"{what}, input {_shape_text(self.input_shape)}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary() if self.status != SKIPPED else ""}


def _capture(model: nn.Module, probes: Sequence[Probe], x: torch.Tensor) -> list[torch.Tensor | None]:
    """Each probe's value (None for a submodule the forward pass never ran); module outputs are copied."""
    import torch

    seen: dict[str, torch.Tensor] = {}
    handles = []

    def keep(probe, value):
        seen[probe] = _copy(value)

    for probe in probes:
        if isinstance(probe, str) and probe:
            name = probe.lstrip("<")
            module = model.get_submodule(name)
            if probe.startswith("<"):
                handles.append(module.register_forward_pre_hook(lambda m, a, p=probe: keep(p, a[0])))
            else:
                handles.append(module.register_forward_hook(lambda m, a, out, p=probe: keep(p, out)))
    try:
        with torch.inference_mode():
            output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    items = list(output.values()) if isinstance(output, dict) else output
    result = []
    for probe in probes:
        if probe == "":
            result.append(output)
        elif isinstance(probe, int):
            result.append(items[probe])
        else:
            result.append(seen.get(probe))
    return result


def _copy(value: Any) -> Any:
    """A module's output as it was: later in-place operations (ReLU(inplace), `x += shortcut`) must not change it."""
    import torch

    try:
        tensor = _tensor(value)
    except (TypeError, StopIteration, IndexError):
        return None
    return tensor.clone() if isinstance(tensor, torch.Tensor) else None


def verify(
    source: nn.Module,
    target: nn.Module,
    pairs: Sequence[tuple[Probe, Probe]] = (("", ""),),
    input_shape: tuple[int, ...] = (1, 3, 224, 224),
    target_input: str = "same",  # or "mean1": the target takes one channel, the source sees it repeated
    mode: str = "outputs",
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    fallback_shape: tuple[int, ...] | None = None,
    stages: Sequence[tuple[Sequence[str], Sequence[str]]] = (),
) -> VerifyResult:
    """Compare source and target on two images drawn from `seed`; fail over `atol + rtol*max|src|`.

    `pairs` are what the mode compares; `stages` (source modules, target modules) are compared as well: a
    stage is equal when the output of one of its source modules equals that of one of its target modules.
    `input_shape`'s first dimension is replaced by two images. When either model raises on it and a
    `fallback_shape` is given (the model's own input size), the comparison runs on that; `reason` says why.
    """
    input_shape = (BATCH, *input_shape[1:])
    stage_probes = [(s, t) for s_chain, t_chain in stages for s in s_chain for t in t_chain]
    probes = [*pairs, *stage_probes]
    try:
        got_source, got_target = _run_pair(source, target, probes, input_shape, target_input, seed)
        note = ""
    except (RuntimeError, AssertionError, ValueError, IndexError) as exc:
        if fallback_shape is None or tuple(fallback_shape[1:]) == tuple(input_shape[1:]):
            raise
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        fallback = (BATCH, *fallback_shape[1:])
        note = f"input {_shape_text(input_shape)} refused ({first}); compared at {_shape_text(fallback)}"
        input_shape = fallback
        got_source, got_target = _run_pair(source, target, probes, input_shape, target_input, seed)
    result = VerifyResult(mode, True, rtol=rtol, atol=atol, input_shape=tuple(input_shape), seed=seed, reason=note)
    notes = [note] if note else []
    outputs = zip(probes, got_source, got_target, strict=True)
    found = [_comparison(s, t, a, b, "output", rtol, atol, notes) for (s, t), a, b in list(outputs)[: len(pairs)]]
    values = {(s, t): (a, b) for (s, t), a, b in zip(probes, got_source, got_target, strict=True)}
    for s_chain, t_chain in stages:
        tried = []
        for s_probe in s_chain:
            for t_probe in t_chain:
                a, b = values[(s_probe, t_probe)]
                if a is not None and b is not None and _tensor(a).shape == _tensor(b).shape:
                    tried.append(_comparison(s_probe, t_probe, a, b, "stage", rtol, atol, []))
        if not tried:
            result.not_compared.append(f"{s_chain[-1]} -> {t_chain[-1]}: not run, or output shapes differ")
            continue
        found.append(min(tried, key=lambda c: (not c.passed, c.max_abs)))
    outputs = [c for c in found if c.kind == "output"]
    outputs_agree = bool(outputs) and all(c.passed and not c.degenerate for c in outputs)
    for comparison in found:
        if outputs_agree and comparison.kind == "stage" and not comparison.passed:
            # The outputs agree on both images: a stage that differs holds parameter-free work (an
            # activation) on the other side of its boundary in one library, as densenet's final ReLU.
            result.not_compared.append(
                f"{comparison.source} -> {comparison.target}: differs by {comparison.max_abs:.3g} while the "
                "outputs agree (parameter-free work on the other side of this module's boundary)"
            )
            continue
        result.comparisons.append(comparison)
        result.max_abs = max(result.max_abs, comparison.max_abs)
        result.max_rel = max(result.max_rel, comparison.max_rel)
        result.passed = result.passed and comparison.passed
    if not result.passed:
        result.status = DIFFERENT
        failed = [c for c in result.comparisons if not c.passed]
        first = next((c for c in failed if c.kind == "stage"), failed[0])  # stages run in forward order
        notes.insert(0, f"first difference: {first.kind} {first.source or 'output'} -> {first.target or 'output'}")
    else:
        empty = [c for c in outputs if c.degenerate]
        if empty or not outputs:
            result.status, result.passed = INCONCLUSIVE, False
            shown = ", ".join(f"{c.source or 'output'} ({c.degenerate})" for c in empty[:3]) or "no output compared"
            notes.insert(0, f"the source's values prove nothing: {shown}")
        else:
            result.status = EQUAL
    if result.not_compared:
        notes.append(f"{len(result.not_compared)} stages not compared (see not_compared)")
    result.reason = "; ".join(notes)
    return result


def _comparison(s_probe, t_probe, a, b, kind: str, rtol: float, atol: float, notes: list[str]) -> Comparison:
    """One comparison of source value `a` with target value `b`; notes get what the comparison noticed."""
    a, b = _tensor(a), _tensor(b)
    if a.shape != b.shape:
        notes.append(f"shape {tuple(a.shape)} (source {s_probe or 'output'}) != {tuple(b.shape)}")
        return Comparison(str(s_probe), str(t_probe), tuple(b.shape), float("inf"), float("inf"), False, kind)
    diff, rel, passed, why = _compare(a.float(), b.float(), rtol, atol)
    if why:
        notes.append(why)
    degenerate = degenerate_reason(a.float(), rtol, atol) if passed else ""
    return Comparison(str(s_probe), str(t_probe), tuple(b.shape), diff, rel, passed, kind, degenerate)


def degenerate_reason(value: torch.Tensor, rtol: float, atol: float) -> str:
    """Why a reference value proves nothing (one constant throughout, or the same for different inputs), or ""."""
    if not value.numel():
        return "empty"
    if bool(value.max() == value.min()):
        return f"constant {float(value.reshape(-1)[0]):g}"
    if value.dim() and value.shape[0] >= 2:
        scale = value.abs().max().item()
        if (value[0] - value[1]).abs().max().item() <= atol + rtol * scale:
            return "the same for different inputs"
    return ""


def _compare(a: torch.Tensor, b: torch.Tensor, rtol: float, atol: float) -> tuple[float, float, bool, str]:
    """Max abs and relative difference of target `b` from source `a`, whether within tolerance, and a note.

    inf and NaN (weights that overflow on the seeded input) must sit at the same places with the same
    values in both; the finite values are compared as usual. An output with no finite value proves nothing.
    """
    import torch

    if not a.numel():
        return 0.0, 0.0, True, ""
    finite_a, finite_b = torch.isfinite(a), torch.isfinite(b)
    note = ""
    if not bool(finite_a.all() and finite_b.all()):
        same_places = torch.equal(finite_a, finite_b)
        same_values = same_places and torch.equal(a[~finite_a].nan_to_num(), b[~finite_b].nan_to_num())
        same_values = same_values and torch.equal(a[~finite_a].isnan(), b[~finite_b].isnan())
        if not same_values:
            return float("inf"), float("inf"), False, "inf/NaN in different places in source and target outputs"
        if not bool(finite_a.any()):
            return 0.0, 0.0, False, "the source's output is all inf/NaN on the seeded input: nothing to compare"
        note = f"{int((~finite_a).sum())} inf/NaN values in the source's output, the same in the target's"
        a, b = a[finite_a], b[finite_b]
    diff = (a - b).abs().max().item()
    scale = a.abs().max().item()
    rel = diff / scale if scale else diff
    return diff, rel, diff <= atol + rtol * scale, note


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _run_pair(source, target, pairs, input_shape, target_input: str, seed: int):
    """Both models' probes, in eval mode, on seeded inputs (the target's single channel for "mean1")."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(input_shape, generator=generator)
    x_target = x[:, :1] if target_input == "mean1" else x
    x_source = x[:, :1].expand(-1, input_shape[1], -1, -1).contiguous() if target_input == "mean1" else x
    was = source.training, target.training
    source.eval()
    target.eval()
    try:
        return _capture(source, [s for s, _ in pairs], x_source), _capture(target, [t for _, t in pairs], x_target)
    finally:
        source.train(was[0])
        target.train(was[1])


def _tensor(value: Any) -> torch.Tensor:
    """The tensor in a model output (timm/torchvision return tensors; some return a tuple or a dict)."""
    import torch

    while not isinstance(value, torch.Tensor):
        if isinstance(value, dict):
            value = next(iter(value.values()))
        elif isinstance(value, list | tuple):
            value = value[0]
        else:
            raise TypeError(f"cannot compare an output of type {type(value).__name__}")
    return value
