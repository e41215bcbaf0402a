"""Which transplanted modules the proof compares one by one: target modules fed from exactly one source module.

A target module corresponds to a source module when every tensor of the target module was fed and
their sources are exactly the tensors of one source module (the smallest one holding them all). The
proof compares the outputs of the outermost such pairs (stages: `layer1`, `blocks.3`, `features.2`)
and of their corresponding children (blocks), so a difference is found where it starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from zoo.adapt.plan import LoadPlan, is_bookkeeping

if TYPE_CHECKING:
    from torch import nn

MAX_STAGES = 64  # enough for every block of a 50-layer network; a longer list adds time, not proof


def fed_sources(plan: LoadPlan) -> dict[str, str]:
    """Target key -> the source key that fed it (bookkeeping aside)."""
    return {i.key: i.source for i in plan.keys if i.fed and i.source and not i.bookkeeping}


def stage_pairs(plan: LoadPlan, target: nn.Module, source: nn.Module) -> list[tuple[list[str], list[str]]]:
    """(source modules, target modules) to compare, outermost first, at most MAX_STAGES.

    Each side lists every module holding exactly the stage's tensors (a block and its residual branch
    hold the same ones; which of them adds the shortcut differs between libraries): the stage is equal
    when one module of each list computes the same. Modules holding only their own tensors (a conv, a
    norm layer, whose activation one library keeps inside and the other beside) are not stages.
    """
    fed = fed_sources(plan)
    source_keys = _keys_by_module([k for k in source.state_dict() if not is_bookkeeping(k)])
    target_keys = _keys_by_module([k for k in target.state_dict() if not is_bookkeeping(k)])
    groups: dict[frozenset, list[str]] = {}
    for t_module, keys in target_keys.items():
        if not t_module or not _has_submodules(t_module, keys) or not all(k in fed for k in keys):
            continue
        sources = frozenset(fed[k] for k in keys)
        s_module = _common_module(sources)
        if s_module and set(source_keys.get(s_module, ())) == sources and len(sources) == len(keys):
            groups.setdefault(sources, []).append(t_module)
    outer_names = {min(t_modules, key=len): sources for sources, t_modules in groups.items()}
    outer = [m for m in outer_names if not any(m.startswith(a + ".") for a in outer_names if a != m)]
    children = [m for m in outer_names if m not in outer and _parent_in(m, outer, outer_names)]
    chosen = sorted(set(outer) | set(children), key=list(outer_names).index)[:MAX_STAGES]
    result = []
    for name in chosen:
        sources = outer_names[name]
        t_chain = sorted(groups[sources], key=len)
        s_chain = _same_keys_chain(_common_module(sources), source_keys)
        if all(_exists(source, s) for s in s_chain) and all(_exists(target, t) for t in t_chain):
            result.append((s_chain, t_chain))
    return result


def _parent_in(name: str, outer: list[str], names) -> bool:
    """Whether the nearest stage above `name` is an outer stage (so `name` is one of its blocks)."""
    above = [a for a in names if name.startswith(a + ".")]
    return bool(above) and max(above, key=len) in outer


def _same_keys_chain(module: str, keys_by_module: dict[str, list[str]]) -> list[str]:
    """`module` and its ancestors that hold exactly its tensors, outermost first."""
    chain = [module]
    parts = module.split(".")
    for depth in range(len(parts) - 1, 0, -1):
        parent = ".".join(parts[:depth])
        if len(keys_by_module.get(parent, ())) != len(keys_by_module[module]):
            break
        chain.append(parent)
    return chain[::-1]


def _keys_by_module(keys: list[str]) -> dict[str, list[str]]:
    """Module path -> every key under it (recursively), for each module path and its ancestors."""
    result: dict[str, list[str]] = {}
    for key in keys:
        parts = key.split(".")[:-1]
        for depth in range(len(parts) + 1):
            result.setdefault(".".join(parts[:depth]), []).append(key)
    return result


def _has_submodules(module: str, keys: list[str]) -> bool:
    depth = module.count(".") + 2 if module else 1
    return any(k.count(".") + 1 > depth for k in keys)


def _common_module(keys: set[str]) -> str:
    parts = [k.split(".")[:-1] for k in keys]
    common = []
    for level in zip(*parts, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def _exists(model: nn.Module, name: str) -> bool:
    """Whether `name` is a real submodule (a remapped source's keys may name none)."""
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def seeded_pairs(plan: LoadPlan, source_state: Mapping) -> list[tuple[str, str]]:
    """(target key, source key) of fed floating tensors holding one constant: they get seeded values."""
    pairs = []
    for target_key, source_key in fed_sources(plan).items():
        value = source_state.get(source_key)
        if value is None or not value.is_floating_point() or value.is_meta or not value.numel():
            continue
        flat = value.detach().reshape(-1)
        if bool((flat == flat[0]).all()):
            pairs.append((target_key, source_key))
    return pairs


def seeded_value(like, seed: int):
    """A non-degenerate value for a tensor that held one constant `c`: around `c` (same sign), or around 0.

    Variances stay positive, scales keep their sign, weights of two or more dimensions get ~1/sqrt(fan-in).
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    constant = float(like.detach().reshape(-1)[0])
    shape = like.shape
    if constant > 0:
        magnitude = constant if constant >= 1e-2 else 0.1
        value = magnitude * (0.5 + torch.rand(shape, generator=generator))
    elif constant < 0:
        value = constant * (0.5 + torch.rand(shape, generator=generator))
    elif like.dim() >= 2:
        fan_in = like[0].numel()
        value = torch.randn(shape, generator=generator) / max(fan_in, 1) ** 0.5
    else:
        value = 0.1 * torch.randn(shape, generator=generator)
    return value.to(like.dtype)
