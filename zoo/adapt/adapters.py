"""Shape adapters (in_chans, num_classes, reshape) and the init policies for tensors nothing fed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from zoo.errors import UserInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

INIT_POLICIES = ("default", "xavier", "kaiming", "zeros")


def first_conv(model: nn.Module) -> str | None:
    """The name of the first Conv2d (the stem `--in-chans` adapts)."""
    from torch import nn

    return next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def classifier(model: nn.Module, num_classes: int | None = None) -> str | None:
    """The name of the last Linear (or 1x1 conv) whose output size is `num_classes` (any, when None)."""
    from torch import nn

    found = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear | nn.Conv2d) and (num_classes is None or m.weight.shape[0] == num_classes):
            if isinstance(m, nn.Linear) or tuple(m.kernel_size) == (1, 1):
                found = name
    return found


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, module)


def replace_head(model: nn.Module, num_classes: int) -> str:
    """Swap the last Linear for a new `Linear(in, num_classes)` (on the same device); returns its name."""
    from torch import nn

    name = classifier(model)
    if name is None:
        raise UserInputError("--num-classes: the target has no Linear classifier to replace")
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None, device=old.weight.device)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, 1, bias=old.bias is not None, device=old.weight.device)
    _set_module(model, name, new)
    return name


def replace_stem(model: nn.Module, in_chans: int) -> str:
    """Swap the first Conv2d for one reading `in_chans` channels; returns its name."""
    from torch import nn

    name = first_conv(model)
    if name is None:
        raise UserInputError("--in-chans: the target has no Conv2d to adapt")
    old = model.get_submodule(name)
    if old.in_channels == in_chans:
        return name
    if old.groups != 1:
        raise UserInputError(f"--in-chans: the first convolution {name} is grouped ({old.groups}); cannot adapt it")
    new = nn.Conv2d(
        in_chans,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
        device=old.weight.device,
    )
    _set_module(model, name, new)
    return name


def adapt_in_chans(weight: torch.Tensor, in_chans: int) -> tuple[torch.Tensor, str]:
    """timm's rule: sum the input channels for 1, else repeat them and rescale by source/target channels."""
    source_chans = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True), f"in_chans {source_chans} -> 1 (sum)"
    repeat = math.ceil(in_chans / source_chans)
    adapted = weight.repeat(1, repeat, 1, 1)[:, :in_chans] * (source_chans / in_chans)
    return adapted, f"in_chans {source_chans} -> {in_chans} (repeat, x{source_chans}/{in_chans})"


def owner(model: nn.Module, key: str) -> tuple[nn.Module, str]:
    module_name, _, leaf = key.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), leaf


def materialise(model: nn.Module, keys: list[str], policy: str, device: str = "cpu") -> dict[str, str]:
    """Give every tensor in `keys` (still on the meta device) real storage and initial values.

    `policy`: "default" runs the module's own `reset_parameters`; "xavier" (xavier-uniform weights,
    zero biases), "kaiming" (kaiming-normal, fan_out) and "zeros" set weights of two or more dimensions.
    Norm layers always start as the identity. Returns key -> how it was initialised.
    """
    if policy not in INIT_POLICIES:
        raise UserInputError(f"--init {policy!r}: choose one of {', '.join(INIT_POLICIES)}")
    by_module: dict[str, list[str]] = {}
    for key in keys:
        by_module.setdefault(key.rpartition(".")[0], []).append(key)
    how: dict[str, str] = {}
    for module_name, module_keys in by_module.items():
        module = model.get_submodule(module_name) if module_name else model
        how.update(_init_module(module, module_name, module_keys, policy, device))
    return how


def _init_module(module: nn.Module, module_name: str, keys: list[str], policy: str, device: str) -> dict[str, str]:
    """Give `keys` (tensors of `module`) fresh storage and initial values; every other tensor is left as it is.

    The module's own `reset_parameters` resets all its tensors, so the ones already loaded are swapped for
    scratch copies while it runs (it must neither overwrite them nor write into the source's storage).
    """
    import torch
    from torch import nn

    leaves = {key.rpartition(".")[2] for key in keys}
    own_reset = policy == "default" and hasattr(module, "reset_parameters")
    kept: list[tuple[dict, str, torch.Tensor]] = []
    for table in (module._parameters, module._buffers):
        for name, tensor in list(table.items()):
            if tensor is None or (name not in leaves and not own_reset):
                continue
            fresh = torch.empty_like(tensor, device=device)
            if table is module._parameters:
                fresh = nn.Parameter(fresh, requires_grad=tensor.requires_grad)
            if name not in leaves:
                kept.append((table, name, tensor))
            table[name] = fresh
    how: dict[str, str] = {}
    try:
        with torch.no_grad():
            if own_reset:
                module.reset_parameters()
            for key in keys:
                leaf = key.rpartition(".")[2]
                if own_reset:
                    how[key] = f"default ({type(module).__name__}.reset_parameters)"
                else:
                    how[key] = _init_tensor(getattr(module, leaf), leaf, policy, module)
    finally:
        for table, name, tensor in kept:
            table[name] = tensor
    return how


def _init_tensor(tensor: torch.Tensor, leaf: str, policy: str, module: nn.Module) -> str:
    from torch import nn

    norm = isinstance(module, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm)
    if leaf in ("running_var",) or (norm and leaf == "weight"):
        tensor.fill_(1)
        return "ones"
    if tensor.dim() < 2 or norm or not tensor.is_floating_point():
        tensor.zero_()
        return "zeros"
    if policy == "xavier":
        nn.init.xavier_uniform_(tensor)
        return "xavier_uniform"
    if policy == "kaiming":
        nn.init.kaiming_normal_(tensor, mode="fan_out", nonlinearity="relu")
        return "kaiming_normal (fan_out)"
    if policy == "zeros":
        tensor.zero_()
        return "zeros"
    nn.init.kaiming_uniform_(tensor, a=math.sqrt(5))
    return "kaiming_uniform (torch default)"
