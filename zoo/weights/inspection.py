"""What is in a checkpoint: tensor counts, parameters vs buffers, dtypes, grouped keys, which architectures
it fits (from the signature index, zoo.weights.signatures: no model is built) and which weight set it is."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from zoo.weights.loading import Checkpoint

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_NUMBER = re.compile(r"^\d+$")
NBT_NOTE = (
    "num_batches_tracked are BatchNorm's batch counters (buffers, not weights; unused in eval). Files saved "
    "before PyTorch 0.4.1 lack them: torchvision's resnet18-5c106cde.pth has 102 entries, a fresh "
    "resnet18().state_dict() 122 (20 BatchNorm layers). zoo loads either kind."
)


HASH_LIMIT = 256 * 1024 * 1024  # a file this large is hashed only when its size is a registered weight set's


@dataclass
class Fit:
    model: str  # family:name (an architecture of the index, as the registry names it)
    verdict: str  # "fits", "near miss", "headless", "same keys, other shapes" (best first)
    differing: list[str] = field(default_factory=list)
    via: str | None = None  # how the state dict was narrowed to fit (a detection model's backbone)


@dataclass
class Inspection:
    path: str
    format: str
    unwrapped: list[str]
    tensors: int
    parameters: int  # elements in parameter tensors (names not ending in a BatchNorm buffer suffix)
    parameter_tensors: int
    buffer_tensors: int
    num_batches_tracked: int
    batchnorm_layers: int
    dtypes: dict[str, int]
    total_bytes: int
    groups: list[dict[str, Any]]
    fits: list[Fit]
    notes: list[str]
    weights: list[str] = field(default_factory=list)  # registry weight sets whose hash is the file's
    sha256: str | None = None
    ema: bool | None = None
    architectures_indexed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def inspect_checkpoint(checkpoint: Checkpoint, find_fits: bool = True) -> Inspection:
    sd = checkpoint.state_dict
    buffers = [k for k in sd if k.endswith(BUFFER_SUFFIXES)]
    nbt = sum(k.endswith("num_batches_tracked") for k in sd)
    bn_layers = sum(k.endswith("running_mean") for k in sd)
    params = sum(v.numel() for k, v in sd.items() if not k.endswith(BUFFER_SUFFIXES))
    notes = []
    if bn_layers:
        counted = "has none" if nbt == 0 else f"has {nbt}"
        notes.append(f"{bn_layers} BatchNorm layers; the file {counted} num_batches_tracked entries. {NBT_NOTE}")
    fits = find_fitting_models(sd) if find_fits else []
    sha256, weights = known_weights(checkpoint.path) if find_fits else (None, [])
    from zoo.weights.signatures import RANKS

    architectures = {w.rpartition(".")[0] for w in weights}  # the models whose weight set this file is, first
    fits.sort(key=lambda f: (RANKS[f.verdict], f.model not in architectures))
    return Inspection(
        path=str(checkpoint.path),
        format=checkpoint.format,
        unwrapped=checkpoint.unwrapped,
        tensors=len(sd),
        parameters=params,
        parameter_tensors=len(sd) - len(buffers),
        buffer_tensors=len(buffers),
        num_batches_tracked=nbt,
        batchnorm_layers=bn_layers,
        dtypes=dict(Counter(str(v.dtype).removeprefix("torch.") for v in sd.values())),
        total_bytes=sum(v.numel() * v.element_size() for v in sd.values()),
        groups=group_keys(sd),
        fits=fits,
        notes=notes,
        weights=weights,
        sha256=sha256,
        ema=checkpoint.ema,
        architectures_indexed=indexed_count() if find_fits else 0,
    )


def group_keys(state_dict: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
    """Keys with the same shape of name, numeric parts folded: `layer1.{0..1}.conv1.weight`."""
    groups: dict[tuple, dict[str, Any]] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        pattern = tuple("#" if _NUMBER.match(p) else p for p in parts)
        group = groups.setdefault(pattern, {"numbers": [set() for _ in parts], "shapes": set(), "count": 0})
        for index, part in enumerate(parts):
            if _NUMBER.match(part):
                group["numbers"][index].add(int(part))
        group["shapes"].add(tuple(value.shape))
        group["count"] += 1
    result = []
    for pattern, group in groups.items():
        name = ".".join(_fold(sorted(group["numbers"][i])) if p == "#" else p for i, p in enumerate(pattern))
        shapes = group["shapes"]
        shape = "x".join(map(str, next(iter(shapes)))) or "scalar" if len(shapes) == 1 else "various"
        result.append({"keys": name, "count": group["count"], "shape": shape})
    return result


def _fold(numbers: list[int]) -> str:
    if len(numbers) == 1:
        return str(numbers[0])
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{{{numbers[0]}..{numbers[-1]}}}"
    return "{" + ",".join(map(str, numbers)) + "}"


def find_fitting_models(state_dict: dict, limit: int = 12) -> list[Fit]:
    """Architectures whose keys and shapes `state_dict` fits, exact fits first, then near misses (another head,
    other input channels, no head). When nothing fits exactly, a detection/segmentation model's backbone is
    tried, then the keys without a prefix they all share (a wrapper's attribute: `net.`, `encoder.`)."""
    from zoo.weights.signatures import EXACT, identify, shapes_of
    from zoo.weights.unwrap import backbone_of

    shapes = shapes_of(state_dict)
    candidates, via = _best(identify(shapes)), None
    if not any(c.verdict == EXACT for c in candidates):
        backbone = backbone_of(state_dict)
        if backbone is not None:
            inner = _best(identify(shapes_of(backbone.state_dict)))
            if inner and (not candidates or inner[0].rank < candidates[0].rank):
                candidates, via = inner, backbone.steps[0]
    stripped, removed = shapes, ""
    for _ in range(3):  # at most three nested wrappers
        if any(c.verdict == EXACT for c in candidates) or not (prefix := _shared_prefix(stripped)):
            break
        stripped, removed = {k[len(prefix) :]: v for k, v in stripped.items()}, removed + prefix
        inner = _best(identify(stripped))
        if inner and (not candidates or inner[0].rank < candidates[0].rank):
            candidates, via = inner, f"without the prefix {removed} every key has"
    return [Fit(c.architecture, c.verdict, list(c.differences), via) for c in candidates[:limit]]


def _shared_prefix(shapes: dict) -> str:
    """`net.` when every key starts with it (and has more after it), else an empty string."""
    first = next(iter(shapes), "")
    head = first.split(".", 1)[0] + "."
    return head if "." in first and all(k.startswith(head) and len(k) > len(head) for k in shapes) else ""


def _best(candidates: list) -> list:
    """Architectures with the same keys but other shapes only when nothing fits better."""
    from zoo.weights.signatures import SAME_KEYS

    closer = [c for c in candidates if c.verdict != SAME_KEYS]
    return closer or candidates


def indexed_count() -> int:
    from zoo.weights.signatures import load_index

    return len(load_index())


def known_weights(path) -> tuple[str | None, list[str]]:
    """The file's sha256 and the registry weight sets it is (by full hash or file-name hash prefix); the file is
    hashed only when a weight set with a hash could be it by its size (or, size unknown, when it is small)."""
    from zoo.errors import ZooError
    from zoo.registry import catalogues
    from zoo.weights.cache import hash_file
    from zoo.weights.fetching import matching_weights

    try:
        size = path.stat().st_size
        hashed = [w for entry in catalogues.models() for w in entry.weights if w.expected_hash]
        if not any(_could_be(w, size) for w in hashed):
            return None, []
        sha256 = hash_file(path)
        return sha256, [f"{s.entry.qualified_name}.{s.weights.tag}" for s in matching_weights(sha256) if s.weights]
    except ZooError:  # a registry that cannot be read: the architectures are still named
        return None, []


def _could_be(weights, size: int) -> bool:
    if weights.size is not None:
        return weights.size == size
    if weights.file_size_mb is not None:  # torchvision's `_file_size`, in MiB to three decimals
        return abs(size / 2**20 - weights.file_size_mb) < 0.01
    return size <= HASH_LIMIT
