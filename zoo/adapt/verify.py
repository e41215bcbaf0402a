"""The numerical proof: run source and target on one seeded input in eval mode and compare what must agree.

A probe names what to read on one side: "" the whole output, an int an item of the output list/dict,
"name" a submodule's output, "<name" a submodule's input. Target modules may declare their pairs with
`zoo_verify_pairs() -> [(source_probe, target_probe), ...]` (a backbone: stages vs its feature maps).

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


@dataclass
class Comparison:
    source: str
    target: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    passed: bool


@dataclass
class VerifyResult:
    """What was compared, the largest differences, and whether all of them are within tolerance."""

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _capture(model: nn.Module, probes: Sequence[Probe], x: torch.Tensor) -> list[torch.Tensor]:
    import torch

    seen: dict[str, torch.Tensor] = {}
    handles = []
    for probe in probes:
        if isinstance(probe, str) and probe:
            name = probe.lstrip("<")
            module = model.get_submodule(name)
            if probe.startswith("<"):
                handles.append(module.register_forward_pre_hook(lambda m, a, p=probe: seen.__setitem__(p, a[0])))
            else:
                handles.append(module.register_forward_hook(lambda m, a, out, p=probe: seen.__setitem__(p, out)))
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
            result.append(seen[probe])
    return result


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
) -> VerifyResult:
    """Compare source and target on `torch.randn(input_shape)` drawn from `seed`; fail over `atol + rtol*max|src|`.

    When either model raises on `input_shape` and a `fallback_shape` is given (the model's own input size),
    the comparison runs again on that; the reason records why.
    """
    try:
        got_source, got_target = _run_pair(source, target, pairs, input_shape, target_input, seed)
        note = ""
    except (RuntimeError, AssertionError, ValueError, IndexError) as exc:
        if fallback_shape is None or tuple(fallback_shape) == tuple(input_shape):
            raise
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        note = f"input {_shape_text(input_shape)} refused ({first}); compared at {_shape_text(fallback_shape)}"
        input_shape = tuple(fallback_shape)
        got_source, got_target = _run_pair(source, target, pairs, input_shape, target_input, seed)
    result = VerifyResult(mode, True, rtol=rtol, atol=atol, input_shape=tuple(input_shape), seed=seed, reason=note)
    for (s_probe, t_probe), a, b in zip(pairs, got_source, got_target, strict=False):
        a, b = _tensor(a), _tensor(b)
        if a.shape != b.shape:
            comparison = Comparison(str(s_probe), str(t_probe), tuple(b.shape), float("inf"), float("inf"), False)
            result.reason = f"shape {tuple(a.shape)} (source {s_probe or 'output'}) != {tuple(b.shape)}"
        else:
            diff, rel, passed, note = _compare(a.float(), b.float(), rtol, atol)
            comparison = Comparison(str(s_probe), str(t_probe), tuple(b.shape), diff, rel, passed)
            if note:
                result.reason = f"{result.reason}; {note}" if result.reason else note
        result.comparisons.append(comparison)
        result.max_abs = max(result.max_abs, comparison.max_abs)
        result.max_rel = max(result.max_rel, comparison.max_rel)
        result.passed = result.passed and comparison.passed
    return result


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
    """Both models' probes, in eval mode, on one seeded input (the target's single channel for "mean1")."""
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
