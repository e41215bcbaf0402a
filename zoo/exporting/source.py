"""The module to export: MODEL built through zoo.targets, with the weights `--weights` names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError
from zoo.registry.records import Selection
from zoo.targets import Target, build_target, on_meta

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
    """Build `spec` and load `weights`: None (the registry default, else random), `none`, a tag or a file.

    A model whose weights are loaded is built with its parameters on the meta device, then takes the loaded
    tensors themselves: no random initialisation of weights about to be replaced, and no second copy of them
    (vit_h_14's 2.5 GB). A model that stays random is built for real.
    """
    if not isinstance(spec, str):
        return Source(Target(type(spec).__name__, spec, "module"), spec, "given", None, None, None, None)
    if weights is not None and weights.lower() == "none":
        return _source(build_target(spec, kwargs), "none", None)
    target = _weightless(spec, kwargs)
    if weights is not None and _is_file(weights):
        path = Path(weights).expanduser()
        _loaded(target, lambda model: _load_file(model, path))
        return _source(target, str(path), _sha256(path))
    if target.selection is None:
        if weights is not None:
            raise UserInputError(f"--weights {weights!r}: no such file (only registry models have weight tags)")
        return _source(build_target(spec, kwargs), "none", None)
    entry = target.selection.entry
    weight_set = target.selection.weights
    if weights is not None:
        weight_set = entry.weight_set(weights)
        if weight_set is None:
            tags = ", ".join(w.tag for w in entry.weights) or "none"
            raise UserInputError(
                f"{entry.qualified_name} has no weight set {weights!r} (tags: {tags}; or give a file, or none)"
            )
    if weight_set is None:
        return _source(build_target(spec, kwargs), "none", None)
    sha256 = _loaded(target, lambda model: _load_registry(model, Selection(entry, weight_set)))
    return _source(target, weight_set.tag, sha256, weight_set)


def _weightless(spec: str, kwargs: dict[str, Any] | None) -> Target:
    """`spec` built with its parameters on the meta device (buffers real); a real build where that fails."""
    try:
        return build_target(spec, kwargs, meta_device=True, real_buffers=True)
    except Exception:  # noqa: BLE001 - a builder that cannot build on meta: the real build says what is wrong
        return build_target(spec, kwargs)


def _loaded(target: Target, load: Callable[[nn.Module], Any]) -> Any:
    """`load(target.model)`; where a tensor is left on the meta device (a buffer some builders derive from a
    parameter), the model is built for real and loaded again. Returns what `load` returned."""
    result = load(target.model)
    if on_meta(target.model):
        target.model = build_target(target.spec, target.kwargs).model
        result = load(target.model)
    return result


def _source(target: Target, weights: str, sha256: str | None, weight_set=None) -> Source:
    """The Source; `weight_set` (input size, mean, std) defaults to the target's registry default."""
    if weight_set is None and target.selection is not None:
        weight_set = target.selection.weights
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
    state_dict = apply_remap(selection.entry.remap, load_checkpoint(result.path).loadable(), model)
    load_into(model, state_dict, f"{selection.name} ({result.path.name})")
    return result.sha256


def _load_file(model: nn.Module, path: Path) -> None:
    from zoo.weights.loading import load_checkpoint, load_into

    if not path.is_file():
        raise UserInputError(f"weights file {str(path)!r} does not exist")
    load_into(model, load_checkpoint(path).loadable(), str(path))
