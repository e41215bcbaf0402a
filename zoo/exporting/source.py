"""The module to export: MODEL built through zoo.targets, with the weights `--weights` names."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError
from zoo.registry.records import Selection
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
        _load_file(target.model, path)
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
    sha256 = _load_registry(target.model, Selection(entry, weight_set))
    return _source(target, weight_set.tag, sha256, weight_set)


def _source(target: Target, weights: str, sha256: str | None, weight_set) -> Source:
    target.weights = None if weights == "none" else weights
    if weight_set is None:
        return Source(target, target.model, weights, sha256, None, None, None)
    return Source(target, target.model, weights, sha256, weight_set.input_size, weight_set.mean, weight_set.std)


def _is_file(value: str) -> bool:
    return Path(value).expanduser().is_file() or value.lower().endswith(WEIGHT_SUFFIXES) or "/" in value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _load_registry(model: nn.Module, selection: Selection) -> str:
    """Fetch the selection's weights through zoo.weights.fetching (cache, mirrors, checks), load them; the sha256."""
    from zoo.weights.fetching import fetch
    from zoo.weights.loading import apply_remap, load_checkpoint, load_into

    result = fetch(selection)
    state_dict = apply_remap(selection.entry.remap, load_checkpoint(result.path).state_dict, model)
    load_into(model, state_dict, f"{selection.name} ({result.path.name})")
    return result.sha256


def _load_file(model: nn.Module, path: Path) -> None:
    from zoo.weights.loading import load_checkpoint, load_into

    if not path.is_file():
        raise UserInputError(f"weights file {str(path)!r} does not exist")
    load_into(model, load_checkpoint(path).state_dict, str(path))
