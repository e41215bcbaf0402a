"""The one loader for every checkpoint zoo touches: safe by default, and it says what it unwrapped.

`.pth`/`.pt`/`.bin` go through `torch.load(weights_only=True, mmap=True)`; `.safetensors` through
safetensors. A pickle that needs an arbitrary global is refused, naming the global, and never executed,
unless the caller passes `trust_pickle=True` for a file they vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ZooError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.registry.records import Selection

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "module", "params")


class UnsafeCheckpointError(ZooError):
    """A checkpoint's pickle needs globals outside torch's weights-only allow-list."""

    exit_code = 6


class CheckpointError(ZooError):
    """A file is not a checkpoint zoo can read, or holds no tensors."""

    exit_code = 6


class WeightsMismatchError(ZooError):
    """A state dict's keys or shapes do not fit the model it is loaded into."""

    exit_code = 6


@dataclass
class Checkpoint:
    """A loaded state dict, the file it came from, its format and what was unwrapped to reach it."""

    state_dict: dict[str, torch.Tensor]
    path: Path
    format: str  # "pickle" (torch.save), "safetensors"
    unwrapped: list[str] = field(default_factory=list)


def detect_format(path: Path) -> str:
    """ "safetensors" or "pickle", from the suffix or, failing that, the file's first bytes."""
    if path.suffix == ".safetensors":
        return "safetensors"
    if path.suffix in (".pth", ".pt", ".bin", ".ckpt", ".tar"):
        return "pickle"
    with open(path, "rb") as stream:
        head = stream.read(16)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return "pickle"
    if len(head) > 8 and head[8:9] == b"{":
        return "safetensors"
    raise CheckpointError(f"{path}: not a PyTorch (.pth/.pt/.bin) or .safetensors checkpoint")


def load_checkpoint(path: str | Path, *, trust_pickle: bool = False) -> Checkpoint:
    """Load `path` safely into a Checkpoint (state dict on CPU), unwrapping common containers."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    fmt = detect_format(path)
    obj = _load_safetensors(path) if fmt == "safetensors" else _load_pickle(path, trust_pickle)
    state_dict, unwrapped = unwrap(obj, path)
    return Checkpoint(state_dict, path, fmt, unwrapped)


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a valid .safetensors file: {exc}") from None


def _load_pickle(path: Path, trust_pickle: bool) -> Any:
    import pickle
    import zipfile

    import torch

    if trust_pickle:
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zipfile" not in str(exc):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-1.6) format
    except pickle.UnpicklingError as exc:
        offending = unsafe_globals(path) or [_global_from_message(str(exc))]
        raise UnsafeCheckpointError(
            f"{path}: refused to unpickle: it needs {', '.join(offending)}, which torch's weights-only loader "
            "does not allow (it could run arbitrary code; nothing was executed). If you trust this file, "
            "pass --trust-pickle (trust_pickle=True)"
        ) from None
    except (zipfile.BadZipFile, EOFError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc})".splitlines()[0]) from None


def unsafe_globals(path: Path) -> list[str]:
    """The globals a zip-format checkpoint's pickle needs beyond torch's allow-list (read, not executed)."""
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        return list(get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - legacy files are not zip archives; fall back to the error message
        return []


def _global_from_message(message: str) -> str:
    for line in message.splitlines():
        if "GLOBAL" in line:
            return line.split("GLOBAL", 1)[1].strip().split(" ")[0]
    return "an unsupported global"


def unwrap(obj: Any, path: Path | str = "") -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensor dict inside `obj` and the containers/prefixes removed to reach it."""
    import torch

    unwrapped: list[str] = []
    while isinstance(obj, dict) and not _mostly_tensors(obj):
        key = next((k for k in CONTAINER_KEYS if isinstance(obj.get(k), dict | torch.nn.Module)), None)
        if key is None:
            break
        obj = obj[key]
        unwrapped.append(key)
        if isinstance(obj, torch.nn.Module):
            obj = obj.state_dict()
            unwrapped.append("nn.Module.state_dict()")
    if isinstance(obj, torch.nn.Module):
        obj, unwrapped = obj.state_dict(), [*unwrapped, "nn.Module.state_dict()"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6]))
        raise CheckpointError(f"{path}: no tensors found (top-level keys: {keys})")
    if len(tensors) < len(obj):
        unwrapped.append(f"dropped {len(obj) - len(tensors)} non-tensor entries")
    metadata = getattr(obj, "_metadata", None)
    for prefix in ("module.", "_orig_mod."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
            if metadata is not None:
                metadata = {k.removeprefix(prefix): v for k, v in metadata.items()}
            unwrapped.append(prefix)
    return _with_metadata(tensors, metadata), unwrapped


def _with_metadata(tensors: dict, metadata: dict | None) -> dict:
    """Keep a state dict's `_metadata` (module versions: torchvision's MNASNet refuses to load without it)."""
    if metadata is None:
        return tensors
    from collections import OrderedDict

    result = OrderedDict(tensors)
    result._metadata = metadata  # type: ignore[attr-defined]
    return result


def _mostly_tensors(obj: dict) -> bool:
    import torch

    values = list(obj.values())
    return bool(values) and sum(isinstance(v, torch.Tensor) for v in values) * 2 > len(values)


def load_weights(name_or_path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, or of a registry name's weights (fetched into the cache first)."""
    path = Path(name_or_path)
    if not path.is_file():
        from zoo.weights.fetching import fetch

        path = fetch(str(name_or_path)).path
    return load_checkpoint(path, trust_pickle=trust_pickle).state_dict


def load_pretrained(model: nn.Module, selection: Selection, *, trust_pickle: bool = False) -> nn.Module:
    """Fetch the selection's weights and load them into `model` strictly (remapped if the entry names a remap)."""
    from zoo.weights.fetching import fetch

    result = fetch(selection)
    state_dict = load_checkpoint(result.path, trust_pickle=trust_pickle).state_dict
    state_dict = apply_remap(selection.entry.remap, state_dict, model)
    load_into(model, state_dict, f"{selection.name} ({result.path.name})")
    return model


def apply_remap(name: str | None, state_dict: dict, model: nn.Module) -> dict:
    """Apply the registered remap `name` (a function or regex rules); unchanged when `name` is None."""
    if not name:
        return state_dict
    import re

    from zoo.registry import catalogues

    remap = catalogues.remaps().get(name)
    if remap is None:
        raise ZooError(f"the registry names key remap {name!r}, but no plugin registers it (`zoo plugins`)")
    if remap.function is not None:
        return remap.function(state_dict, model)
    result = {}
    for key, value in state_dict.items():
        for pattern, replacement in remap.rules:
            key = re.sub(pattern, replacement, key)
        result[key] = value
    return result


def load_into(model: nn.Module, state_dict: dict, what: str) -> None:
    """`model.load_state_dict(state_dict, strict=True)` with an error that lists what does not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if items:
                parts.append(f"{len(items)} {label} (e.g. {', '.join(items[:3])})")
        raise WeightsMismatchError(
            f"weights {what} do not fit {type(model).__name__}: {'; '.join(parts)}; "
            "check the model name and its builder arguments (e.g. num_classes)"
        )
    model.load_state_dict(state_dict, strict=True)
