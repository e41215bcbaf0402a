"""Norm layers whose eps differs between source and target: compensated exactly, and reported.

BatchNorm in eval computes `(x - mean) / sqrt(var + eps)`. Feeding `var' = var + eps_source - eps_target`
keeps `var' + eps_target` equal to the source's `var + eps_source`, so the target computes the same
function and the saved state dict carries it (torchvision's mobilenet_v3 and efficientnet_v2 use 1e-3,
timm 1e-5). Only a larger source eps is folded: a smaller one would subtract from small variances (a
negative one is possible) and a deep net amplifies the rounding (efficientnet_v2_l differed by 2e-3).
Then, and for LayerNorm and GroupNorm (no statistics to fold into), the target module takes the source's
eps instead; the note says that the saved weights need a model built with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.adapt.plan import LoadPlan

if TYPE_CHECKING:
    import torch
    from torch import nn

FOLDED = "folded into running_var"
SET = "target eps set to the source's (not stored in the state dict: build the target with it)"


def compensate(target: nn.Module, source: nn.Module, plan: LoadPlan, tensors: dict[str, torch.Tensor]) -> None:
    """Fold or set every eps difference between fed norm layers; one note per (kind, eps pair, remedy)."""
    from torch import nn

    norms = nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm
    items = plan.by_key()
    pairs: dict[str, str] = {}
    for item in plan.keys:
        if item.fed and item.source:
            pairs.setdefault(item.key.rpartition(".")[0], item.source.rpartition(".")[0])
    counts: dict[tuple[str, float, float, str], int] = {}
    for t_name, s_name in pairs.items():
        t_mod, s_mod = _submodule(target, t_name), _submodule(source, s_name)
        if not isinstance(t_mod, norms) or not isinstance(s_mod, norms) or t_mod.eps == s_mod.eps:
            continue
        delta = s_mod.eps - t_mod.eps
        how = SET
        var_key = f"{t_name}.running_var" if t_name else "running_var"
        if isinstance(t_mod, nn.modules.batchnorm._NormBase) and var_key in tensors and delta > 0:
            folded = tensors[var_key].double() + delta
            if bool((folded >= 0).all()):
                tensors[var_key] = folded.to(tensors[var_key].dtype)
                items[var_key].offset = delta
                change = f"+ {delta:.3g} (eps {s_mod.eps:g} -> {t_mod.eps:g})"
                items[var_key].operation = f"{items[var_key].operation}, {change}"
                how = FOLDED
        key = (type(t_mod).__name__, s_mod.eps, t_mod.eps, how)
        if how == SET:
            t_mod.eps = s_mod.eps
        counts[key] = counts.get(key, 0) + 1
    for (kind, s_eps, t_eps, how), n in counts.items():
        plan.notes.append(f"eps differs in {n} {kind} layers: source {s_eps:g}, target {t_eps:g}: {how}")


def _submodule(model: nn.Module, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None
