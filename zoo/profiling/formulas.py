"""MAC formulas per aten op: torch's own table, the attention kernels it lacks, and plugins' formulas.

A formula takes the op's arguments (tensors, often on the meta device) and its output as `out`, and
returns multiply-accumulates. torch's table (`torch.utils.flop_counter`) counts FLOPs = 2 x MACs, so
its values are halved here. Module formulas take `(module, inputs, output)` and replace the count of
every op run inside that module.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zoo.plugins import get_plugins
from zoo.registry.model_registry import Catalogue

OpFormula = Callable[..., int]
ModuleFormula = Callable[[Any, tuple, Any], int]


@dataclass(frozen=True)
class Formulas:
    """Formulas by aten op name (`aten::mm`, `mylib::scale`) and by module class."""

    ops: dict[str, OpFormula]
    modules: dict[type, ModuleFormula]


def _numel(shape) -> int:
    return math.prod(shape)


def _sdpa_macs(query, key, value, *args: Any, out: Any = None, **kwargs: Any) -> int:
    """q @ k^T and attn @ v: batch x heads x L x S x (E + Ev)."""
    *batch, length, embed = query.shape
    source = key.shape[-2]
    return _numel(batch) * length * source * (embed + value.shape[-1])


def _native_mha_macs(
    query, key, value, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, *args, out=None, **kwargs
) -> int:
    """The fused `nn.MultiheadAttention` fast path: in-projections, attention, out-projection."""
    batch, length, _ = query.shape
    source = key.shape[1]
    projections = batch * (length + 2 * source) * embed_dim * embed_dim
    attention = 2 * batch * length * source * embed_dim
    return projections + attention + batch * length * embed_dim * embed_dim


def _mv_macs(matrix, vector, *args, out=None, **kwargs) -> int:
    return _numel(matrix.shape)


def _addmv_macs(bias, matrix, vector, *args, out=None, **kwargs) -> int:
    return _numel(matrix.shape)


def _dot_macs(a, b, *args, out=None, **kwargs) -> int:
    return a.shape[0]


def _addbmm_macs(bias, a, b, *args, out=None, **kwargs) -> int:
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _addmm_activation_macs(bias, a, b, *args, out=None, **kwargs) -> int:
    return a.shape[0] * a.shape[1] * b.shape[1]


EXTRA_OP_FORMULAS: dict[str, OpFormula] = {
    "aten::_scaled_dot_product_flash_attention_for_cpu": _sdpa_macs,
    "aten::_scaled_dot_product_fused_attention_overrideable": _sdpa_macs,
    "aten::_native_multi_head_attention": _native_mha_macs,
    "aten::mv": _mv_macs,
    "aten::addmv": _addmv_macs,
    "aten::dot": _dot_macs,
    "aten::vdot": _dot_macs,
    "aten::addbmm": _addbmm_macs,
    "aten::_addmm_activation": _addmm_activation_macs,
}


def _halved(flop_formula: Callable[..., int]) -> OpFormula:
    def macs(*args: Any, out: Any = None, **kwargs: Any) -> int:
        return int(flop_formula(*args, **kwargs, out_val=out)) // 2

    return macs


def torch_formulas() -> dict[str, OpFormula]:
    """torch.utils.flop_counter's table, keyed by op name, in MACs."""
    from torch.utils.flop_counter import flop_registry

    result = {}
    for packet, formula in flop_registry.items():
        name = getattr(packet, "_qualified_op_name", None)
        if name:
            result[name] = _halved(formula)
    return result


def op_name(target: Any) -> str:
    """`aten::mm` for `torch.ops.aten.mm`, its packet or overload, or the string itself."""
    if isinstance(target, str):
        return target if "::" in target else f"aten::{target}"
    packet = getattr(target, "_overloadpacket", target)
    name = getattr(packet, "_qualified_op_name", None)
    if name is None:
        raise TypeError(f"{target!r} is not an aten op, an op name or a module class")
    return name


def plugin_formulas() -> Formulas:
    """Formulas contributed by plugins through `register_flop_formulas`."""
    ops: Catalogue[OpFormula] = Catalogue("flop formula")
    classes: Catalogue[tuple[type, ModuleFormula]] = Catalogue("module flop formula")

    def register_for(plugin: str):
        def register(target: Any, formula: Callable[..., int], overrides: str | None = None) -> None:
            if isinstance(target, type):
                classes.add(f"{target.__module__}.{target.__qualname__}", (target, formula), plugin, overrides)
                return
            ops.add(op_name(target), formula, plugin, overrides)

        return register

    get_plugins().collect("register_flop_formulas", register_for)
    return Formulas(dict(ops.items()), {cls: formula for _, (cls, formula) in classes.items()})


def all_formulas(extra: Formulas | None = None) -> Formulas:
    """torch's table, zoo's additions, plugins' formulas, then `extra` (later ones win)."""
    plugins = plugin_formulas()
    ops = {**torch_formulas(), **EXTRA_OP_FORMULAS, **plugins.ops}
    modules = dict(plugins.modules)
    if extra is not None:
        ops.update(extra.ops)
        modules.update(extra.modules)
    return Formulas(ops, modules)
