"""Which target tensors still hold their initial values after loading: the sign of a missed transplant.

Two kinds, each with its evidence (the report's `still_initial`):

- not fed (MISSING, SKIPPED_SHAPE, or kept as built): nothing from the source reached them, so they hold
  exactly what the init policy gave them. This is known from the plan, not guessed.
- fed, yet equal to their module's own default initialisation: a loaded tensor that is one constant
  throughout (random inits cannot be told apart from trained values; the reproducible defaults are
  constants: BatchNorm's ones and zeros, a layer scale's fill value) is compared with what its module's
  `reset_parameters()` gives a blank copy of the module, under two seeds (a value that changes with the
  seed is random, never flagged). Equal: the source itself never trained that tensor. A constant tensor
  whose module has no `reset_parameters` cannot be checked this way and is listed as a heuristic.

Only modules holding a constant fed tensor are copied and reset, so the check stays cheap.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from zoo.adapt.plan import LoadPlan

if TYPE_CHECKING:
    import torch
    from torch import nn

NOT_FED = "not fed"
DEFAULT_INIT = "default init"
CONSTANT = "constant (heuristic)"


@dataclass
class InitialTensor:
    """A target tensor that still holds an initial value, and why zoo says so."""

    key: str
    outcome: str  # the plan's outcome (LOADED, RENAMED, ..., MISSING, SKIPPED_SHAPE)
    kind: str  # NOT_FED, DEFAULT_INIT (checked against reset_parameters) or CONSTANT (heuristic)
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def still_initial(model: nn.Module, plan: LoadPlan) -> list[InitialTensor]:
    """Every target tensor (bookkeeping aside) that nothing fed or that equals its module's fresh default."""
    found: list[InitialTensor] = []
    candidates: dict[str, list[tuple[Any, str, float]]] = {}
    for item in plan.keys:
        if item.bookkeeping:
            continue
        if not item.fed:
            found.append(InitialTensor(item.key, item.outcome, NOT_FED, f"not fed: {item.init or 'initialised'}"))
            continue
        module_name, _, leaf = item.key.rpartition(".")
        module = model.get_submodule(module_name) if module_name else model
        value = _constant(getattr(module, leaf, None))
        if value is not None:
            candidates.setdefault(module_name, []).append((item, leaf, value))
    cache: dict[tuple, dict[str, torch.Tensor] | None] = {}
    for module_name, items in candidates.items():
        module = model.get_submodule(module_name) if module_name else model
        signature = _signature(module)
        if signature not in cache:
            cache[signature] = _default_values(module)
        defaults = cache[signature]
        kind_name = type(module).__name__
        for item, leaf, value in items:
            tensor = getattr(module, leaf)
            if defaults is None:
                if tensor.numel() > 1:
                    evidence = f"loaded, but one constant {value:g} throughout; {kind_name} has no reset_parameters"
                    found.append(InitialTensor(item.key, item.outcome, CONSTANT, evidence))
            elif leaf in defaults and _equal(tensor, defaults[leaf]):
                evidence = f"loaded, but equals a fresh {kind_name}.reset_parameters(): the source never trained it"
                found.append(InitialTensor(item.key, item.outcome, DEFAULT_INIT, evidence))
    order = {item.key: n for n, item in enumerate(plan.keys)}
    return sorted(found, key=lambda t: order[t.key])


def _signature(module: nn.Module) -> tuple:
    """What a module's `reset_parameters` can depend on: its type, its tensors' shapes, its plain settings."""
    tensors = [(k, None if v is None else (tuple(v.shape), v.dtype)) for k, v in module.state_dict().items()]
    settings = [(k, v) for k, v in sorted(vars(module).items()) if isinstance(v, int | float | str | bool | tuple)]
    return type(module), tuple(tensors), repr(settings)


def _constant(tensor: torch.Tensor | None) -> float | None:
    """The value of a floating tensor that holds one value throughout (None otherwise); cheap on most."""
    if tensor is None or tensor.is_meta or not tensor.is_floating_point() or tensor.numel() == 0:
        return None
    flat = tensor.detach().reshape(-1)
    first = flat[0]
    if flat[-1] != first or not bool((flat == first).all()):
        return None
    return float(first)


def _equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.detach(), b)


def _blank_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` with fresh NaN-filled storage of the same shapes (the original is untouched).

    NaN never equals itself, so a tensor that `reset_parameters` leaves alone is never taken for a default.
    """
    from torch import nn

    clone = copy.copy(module)
    clone._parameters = {
        k: None if v is None else nn.Parameter(_blank(v), requires_grad=v.requires_grad)
        for k, v in module._parameters.items()
    }
    clone._buffers = {k: None if v is None else _blank(v) for k, v in module._buffers.items()}
    clone._modules = {k: None if m is None else _blank_copy(m) for k, m in module._modules.items()}
    return clone


def _blank(tensor: torch.Tensor) -> torch.Tensor:
    import torch

    if tensor.is_floating_point():
        return torch.full_like(tensor, float("nan"), device="cpu")
    return torch.zeros_like(tensor, device="cpu")


def _default_values(module: nn.Module) -> dict[str, torch.Tensor] | None:
    """The module's own tensors as its `reset_parameters()` sets them, where that does not depend on the seed.

    None when the module has no `reset_parameters` (or it fails on a copy): nothing to compare with.
    """
    import torch

    reset = getattr(module, "reset_parameters", None)
    if not callable(reset):
        return None
    draws = []
    for seed in (0, 1):
        clone = _blank_copy(module)
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also seeds CUDA
                clone.reset_parameters()
        except (RuntimeError, AttributeError, TypeError, ValueError):  # a reset that cannot run on a copy
            return None
        draws.append({**dict(clone.named_parameters(recurse=False)), **dict(clone.named_buffers(recurse=False))})
    first, second = draws
    return {leaf: t.detach() for leaf, t in first.items() if leaf in second and _equal(t, second[leaf])}
