"""The state dict inside a training checkpoint, as users have them, and a description of what was unwrapped.

Handled: containers (`{"state_dict": ...}` from Lightning, `{"model": ...}`, ...) with their `epoch`,
`optimizer_states`, `hyper_parameters` beside; timm's train script output (`state_dict` and `state_dict_ema`:
the EMA by default, `ema=False` for the raw weights); a whole pickled `nn.Module`; the prefixes wrappers add
(`module.` from DataParallel/DDP, `_orig_mod.` from torch.compile, `model.` from a LightningModule, nested in
any order); mmpretrain's `backbone.`/`neck.`/`head.fc.` layout (with its `meta` beside). `backbone_of`
takes the classification backbone out of a torchvision detection (`backbone.body.`) or segmentation
(`backbone.`) model: callers use it when the whole dict fits nothing, those layouts being models too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import CheckpointError

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module", "params", "weights")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
WRAPPER_PREFIXES = {
    "module.": "module. (DataParallel/DDP)",
    "_orig_mod.": "_orig_mod. (torch.compile)",
    "model.": "model. (LightningModule attribute)",
}
MMPRETRAIN_GROUPS = ("backbone.", "neck.", "head.", "data_preprocessor.")
TASK_HEADS = ("backbone.fpn.", "rpn.", "roi_heads.", "classifier.", "aux_classifier.", "transform.")


class UnwrapError(CheckpointError):
    """A checkpoint holds no state dict zoo can find, or not the one asked for (`--ema` without EMA weights)."""

    exit_code = 6


@dataclass
class Unwrapped:
    """The tensors found, and each step taken to reach them, in words (`zoo inspect` prints them)."""

    state_dict: dict[str, Any]
    steps: list[str] = field(default_factory=list)
    ema: bool | None = None  # True: EMA weights chosen, False: the raw ones beside EMA weights; None: no EMA
    packed: dict[str, Any] = field(default_factory=dict)  # quantized modules' packed parameters (not tensors)


def unwrap(obj: Any, where: str = "", ema: bool | None = None) -> Unwrapped:
    """The state dict inside `obj` (what torch.load or safetensors returned); `ema`: None takes the EMA weights
    when there are any, True insists on them, False takes the raw ones."""
    import torch

    steps: list[str] = []
    chose_ema = None
    mmengine = False  # mmpretrain/mmengine checkpoints carry a `meta` dict beside their state_dict
    obj = _module_state(obj, steps)
    while isinstance(obj, Mapping) and not _mostly_tensors(obj):
        key, chose_ema = _container_key(obj, where, ema, chose_ema)
        if key is None:
            break
        mmengine = mmengine or isinstance(obj.get("meta"), Mapping)
        others = [str(k) for k in obj if k != key]
        beside = f" (beside {', '.join(others[:5])}{', ...' if len(others) > 5 else ''})" if others else ""
        steps.append(f"[{key!r}]{beside}")
        obj = _module_state(obj[key], steps)
    if ema and chose_ema is None:
        raise UnwrapError(f"{where}: --ema: the checkpoint holds no EMA weights (looked for {', '.join(EMA_KEYS)})")
    if not isinstance(obj, Mapping):
        raise UnwrapError(f"{where}: holds a {type(obj).__name__}, not a state dict")
    entries = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor) or is_packed(v)}
    if not any(isinstance(v, torch.Tensor) for v in entries.values()):
        keys = ", ".join(map(str, list(obj)[:6]))
        raise UnwrapError(f"{where}: no tensors found (top-level keys: {keys or 'none'})")
    if len(entries) < len(obj):
        steps.append(f"dropped {len(obj) - len(entries)} non-tensor entries")
    metadata = getattr(obj, "_metadata", None)
    entries, metadata = _strip_prefixes(entries, metadata, steps)
    if mmengine:
        entries = _mmpretrain(entries, steps)
    tensors = {k: v for k, v in entries.items() if isinstance(v, torch.Tensor)}
    packed = {k: v for k, v in entries.items() if k not in tensors}
    return Unwrapped(with_metadata(tensors, metadata), steps, chose_ema, packed)


def is_packed(value: Any) -> bool:
    """A quantized module's packed-parameter entry in a state dict: its dtype (`fc._packed_params.dtype`) or
    its (weight, bias) tuple (`fc._packed_params._packed_params`), which `load_state_dict` needs back."""
    import torch

    if isinstance(value, torch.dtype):
        return True
    return (
        isinstance(value, tuple)
        and any(isinstance(v, torch.Tensor) for v in value)
        and all(v is None or isinstance(v, torch.Tensor) for v in value)
    )


def _module_state(obj: Any, steps: list[str]) -> Any:
    import torch

    if isinstance(obj, torch.nn.Module):
        steps.append(f"{type(obj).__name__}.state_dict() (a pickled module)")
        return obj.state_dict()
    return obj


def _container_key(obj: Mapping, where: str, ema: bool | None, chose: bool | None) -> tuple[str | None, bool | None]:
    """The key to descend into, and whether that is an EMA choice."""
    import torch

    def usable(key: str) -> bool:
        """A module, or a dict holding tensors (or containers of them): not a settings dict like {"ema": {...}}."""
        value = obj.get(key)
        if isinstance(value, torch.nn.Module):
            return True
        return isinstance(value, Mapping) and (
            _mostly_tensors(value) or any(isinstance(value.get(k), Mapping | torch.nn.Module) for k in CONTAINER_KEYS)
        )

    ema_key = next((k for k in EMA_KEYS if usable(k)), None)
    raw_key = next((k for k in CONTAINER_KEYS if usable(k)), None)
    if ema_key is not None and (ema is not False or raw_key is None):
        if ema is False:
            raise UnwrapError(f"{where}: --no-ema: the checkpoint holds only EMA weights ({ema_key!r})")
        return ema_key, True
    if ema_key is not None:
        return raw_key, False
    return raw_key, chose


def _strip_prefixes(tensors: dict, metadata: Mapping | None, steps: list[str]) -> tuple[dict, Mapping | None]:
    """Remove wrapper prefixes every key shares, nested in any order (`module._orig_mod.`)."""
    while True:
        prefix = next((p for p in WRAPPER_PREFIXES if all(k.startswith(p) for k in tensors)), None)
        if prefix is None:
            return tensors, metadata
        tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
        if metadata is not None:
            metadata = {k.removeprefix(prefix.rstrip(".")).removeprefix("."): v for k, v in metadata.items()}
        steps.append(f"prefix {WRAPPER_PREFIXES[prefix]}")


def _mmpretrain(tensors: dict, steps: list[str]) -> dict:
    """mmpretrain's ImageClassifier: `backbone.X` -> `X`, `head.fc.X` -> `fc.X` (torchvision/timm naming)."""
    if not any(k.startswith("backbone.") for k in tensors):
        return tensors
    if not all(k.startswith(MMPRETRAIN_GROUPS) for k in tensors):
        return tensors
    head = [k for k in tensors if k.startswith("head.")]
    if any(not k.startswith("head.fc.") for k in head):
        return tensors
    result = {k.removeprefix("backbone."): v for k, v in tensors.items() if k.startswith("backbone.")}
    result.update({k.removeprefix("head."): v for k in head for v in [tensors[k]]})
    dropped = len(tensors) - len(result)
    extra = f"; dropped {dropped} others" if dropped else ""
    steps.append(f"mmpretrain layout: backbone. -> (none), head.fc. -> fc.{extra}")
    return result


def backbone_of(state_dict: Mapping[str, Any]) -> Unwrapped | None:
    """The classification backbone of a torchvision detection (`backbone.body.`) or segmentation (`backbone.` with
    `classifier.`) model's state dict, or None when it is not one of those layouts."""
    keys = list(state_dict)
    for prefix in ("backbone.body.", "backbone."):
        inside = [k for k in keys if k.startswith(prefix)]
        if not inside:
            continue
        rest = [k for k in keys if not k.startswith(prefix)]
        if not rest or not all(k.startswith(TASK_HEADS) for k in rest):
            continue
        groups = sorted({k.split(".", 2)[1] if k.startswith("backbone.") else k.split(".", 1)[0] for k in rest})
        result = {k[len(prefix) :]: state_dict[k] for k in inside}
        step = f"the backbone {prefix}* of a detection/segmentation model"
        return Unwrapped(result, [f"{step}; dropped {len(rest)} tensors ({', '.join(groups)})"])
    return None


def with_metadata(tensors: dict, metadata: Mapping | None) -> dict:
    """Keep a state dict's `_metadata` (module versions: torchvision's MNASNet refuses to load without it)."""
    if metadata is None:
        return tensors
    from collections import OrderedDict

    result = OrderedDict(tensors)
    result._metadata = dict(metadata)  # type: ignore[attr-defined]
    return result


def _mostly_tensors(obj: Mapping) -> bool:
    import torch

    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) * 2 > len(values)
