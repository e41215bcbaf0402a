"""The module to export: MODEL built through zoo.targets, with the weights `--weights` names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError
from zoo.targets import Target, build_target

if TYPE_CHECKING:
    from torch import nn

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")


@dataclass
class Source:
    """A built model with its weights loaded, and the facts the ONNX metadata records."""

    target: Target
    model: nn.Module
    weights: str  # a tag (`tv_in1k`), a file path, or `none`
    weights_sha256: str | None
    input_size: tuple[int, ...] | None  # C, H, W the weight set expects
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None


def load_source(spec: str | nn.Module, weights: str | None, kwargs: dict[str, Any] | None) -> Source:
    """Build `spec` and load `weights`: None (the registry default, else random), `none`, a tag or a file."""
    if not isinstance(spec, str):
        return Source(Target(type(spec).__name__, spec, "module"), spec, "given", None, None, None, None)
    target = build_target(spec, kwargs)
    weight_set = target.selection.weights if target.selection else None
    if weights is not None and weights.lower() == "none":
        return _source(target, "none", None, weight_set)
    if weights is not None and _is_file(weights):
        path = Path(weights).expanduser()
        _load_state_dict(target.model, _read_checkpoint(path), str(path))
        return _source(target, str(path), _sha256(path), weight_set)
    if target.selection is None:
        if weights is not None:
            raise UserInputError(f"--weights {weights!r}: no such file (only registry models have weight tags)")
        return _source(target, "none", None, None)
    entry = target.selection.entry
    if weights is not None:
        weight_set = entry.weight_set(weights)
        if weight_set is None:
            tags = ", ".join(w.tag for w in entry.weights) or "none"
            raise UserInputError(
                f"{entry.qualified_name} has no weight set {weights!r} (tags: {tags}; or give a file, or none)"
            )
    if weight_set is None:
        return _source(target, "none", None, None)
    path, sha256 = _fetch(f"{entry.qualified_name}.{weight_set.tag}")
    _load_state_dict(target.model, _read_checkpoint(path), f"{entry.qualified_name}.{weight_set.tag}")
    return _source(target, weight_set.tag, sha256 or weight_set.sha256, weight_set)


def _source(target: Target, weights: str, sha256: str | None, weight_set) -> Source:
    target.weights = None if weights == "none" else weights
    if weight_set is None:
        return Source(target, target.model, weights, sha256, None, None, None)
    return Source(
        target, target.model, weights, sha256, weight_set.input_size, weight_set.mean, weight_set.std
    )


def _is_file(value: str) -> bool:
    return Path(value).expanduser().is_file() or value.lower().endswith(WEIGHT_SUFFIXES) or "/" in value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(name: str) -> tuple[Path, str | None]:
    """Download (or find in the cache) a registry weight set through zoo.fetching."""
    from zoo.fetching import fetch

    result = fetch(name)
    if isinstance(result, list | tuple):
        result = result[0]
    path = Path(getattr(result, "path", result))
    return path, getattr(result, "sha256", None)


def _read_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise UserInputError(f"weights file {str(path)!r} does not exist")
    try:
        from zoo.loading import load_checkpoint
    except ImportError:  # zoo.loading not installed yet: plain safe loading
        return _plain_load(path)
    return load_checkpoint(path).state_dict


def _plain_load(path: Path) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    data = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    return {k.removeprefix("module."): v for k, v in data.items()}


def _load_state_dict(model: nn.Module, state_dict: dict, what: str) -> None:
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches
        detail = str(exc).strip().splitlines()[-1].strip()
        raise UserInputError(f"weights {what} do not fit the model: {detail}; use `zoo adapt` to remap them") from None
    if missing or unexpected:
        def show(keys):
            return ", ".join(list(keys)[:3]) + (" ..." if len(keys) > 3 else "")

        raise UserInputError(
            f"weights {what} do not fit the model: {len(missing)} missing keys ({show(missing)}), "
            f"{len(unexpected)} unexpected ({show(unexpected)}); use `zoo adapt` to remap them"
        )
