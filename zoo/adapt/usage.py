"""The order in which a model uses its tensors, from a forward pass traced on the meta device.

Registration order is how a library wrote `__init__`; it can differ between libraries for one function
(torchvision's regnet registers and runs its shortcut before the main branch, timm's after). The trace
records, for every parameter and buffer, the first operation that reads it, bare tensors (a class token,
a position embedding) and tensors used functionally included. Each tensor is ranked by that operation's
depth in the data flow (longest path from the input), then by its height (longest path to an output:
of two branches leaving one tensor, the longer goes first), then by when it ran. Parallel branches then
rank alike in both libraries whatever order their code runs them in.

Nothing is computed: every tensor is swapped for a meta-device twin while the trace runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

TRIED_SIDES = (224, 299, 256, 384, 512, 518)


def usage_order(model: nn.Module, input_shape: Sequence[int] | None = None) -> dict[str, int] | None:
    """State-dict key -> rank by first use in a meta-device forward pass; None when the model cannot be traced.

    Keys the forward pass never reads (`num_batches_tracked`, an unused buffer) rank after every used one,
    in registration order. `input_shape` is (C, H, W); without it the usual input sides are tried in turn.
    """
    traced = _first_trace(model, input_shape)
    return traced[0] if traced else None


def used_keys(model: nn.Module, input_shape: Sequence[int] | None = None) -> set[str] | None:
    """The state-dict keys a meta-device eval forward pass reads (None when it cannot be traced)."""
    traced = _first_trace(model, input_shape)
    return traced[1] if traced else None


def _first_trace(model: nn.Module, input_shape: Sequence[int] | None):
    shapes = [tuple(input_shape)] if input_shape else []
    shapes += [(3, side, side) for side in TRIED_SIDES if (3, side, side) not in shapes]
    for shape in shapes:
        traced = _trace(model, shape)
        if traced is not None:
            return traced
    return None


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[dict[str, int], set[str]] | None:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    keys = list(model.state_dict(keep_vars=True))
    swapped = _swap_to_meta(model)
    names = {id(t): key for key, t in model.state_dict(keep_vars=True).items()}
    depth: list[int] = [0]  # node 0: the input
    parents: list[list[int]] = [[]]
    node_of: dict[int, int] = {}
    first_use: dict[str, int] = {}
    alive: list[torch.Tensor] = []  # keep outputs alive so that their ids are not reused

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            node = len(depth)
            inputs = []
            for value in tree_flatten((args, kwargs))[0]:
                if not isinstance(value, torch.Tensor):
                    continue
                key = names.get(id(value))
                if key is not None:
                    first_use.setdefault(key, node)
                elif id(value) in node_of:
                    inputs.append(node_of[id(value)])
            out = func(*args, **kwargs)
            depth.append(1 + max((depth[i] for i in inputs), default=0))
            parents.append(inputs)
            for value in tree_flatten(out)[0]:
                if isinstance(value, torch.Tensor) and id(value) not in names:
                    node_of[id(value)] = node
                    alive.append(value)
            return out

    x = torch.empty((1, *input_shape), device="meta")
    node_of[id(x)] = 0
    was_training = model.training
    model.eval()
    try:
        with Recorder(), torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - any failure means: this model cannot be traced at this size
        return None
    finally:
        model.train(was_training)
        _restore(swapped)
    height = [0] * len(depth)
    for node in range(len(depth) - 1, -1, -1):
        for parent in parents[node]:
            height[parent] = max(height[parent], height[node] + 1)
    used = sorted(first_use, key=lambda k: (depth[first_use[k]], -height[first_use[k]], first_use[k]))
    order = used + [k for k in keys if k not in first_use]
    return {key: rank for rank, key in enumerate(order)}, set(used)


def _swap_to_meta(model: nn.Module) -> list[tuple[dict, str, object]]:
    """Replace every tensor that has storage by a meta twin; returns what to put back."""
    from torch import nn

    swapped = []
    for module in model.modules():
        for table in (module._parameters, module._buffers):
            for name, tensor in list(table.items()):
                if tensor is None or tensor.is_meta:
                    continue
                twin = tensor.to("meta")
                if isinstance(tensor, nn.Parameter):
                    twin = nn.Parameter(twin, requires_grad=tensor.requires_grad)
                swapped.append((table, name, tensor))
                table[name] = twin
    return swapped


def _restore(swapped: list[tuple[dict, str, object]]) -> None:
    for table, name, tensor in swapped:
        table[name] = tensor
