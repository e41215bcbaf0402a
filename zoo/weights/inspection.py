"""What is in a checkpoint: tensor counts, parameters vs buffers, dtypes, grouped keys, which models it fits."""

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


@dataclass
class Fit:
    model: str
    verdict: str  # "fits", "head differs"
    differing: list[str] = field(default_factory=list)


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
    fits = find_fitting_models(sd, params) if find_fits else []
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


def find_fitting_models(state_dict: dict, params: int, limit: int = 6) -> list[Fit]:
    """Registry models whose keys and shapes match (built on the meta device, so no memory is used).

    Only models whose recorded parameter count equals the file's, or is the closest few within 10%,
    are built: this keeps inspection to a handful of cheap meta-device builds.
    """
    from zoo.registry import catalogues

    counts = {}
    for entry in catalogues.models():
        for weights in entry.weights:
            if weights.params and entry.qualified_name not in counts:
                counts[entry.qualified_name] = weights.params
    exact = [name for name, count in counts.items() if count == params]
    near = sorted(
        (abs(count - params), name)
        for name, count in counts.items()
        if name not in exact and abs(count - params) <= 0.1 * max(params, 1)
    )
    candidates = exact + [name for _, name in near][: max(0, limit - len(exact))]
    fits = []
    for name in candidates:
        fit = _compare(name, state_dict)
        if fit is not None:
            fits.append(fit)
    return fits


def _compare(name: str, state_dict: dict) -> Fit | None:
    import torch

    from zoo.api import create_model

    try:
        with torch.device("meta"):
            model = create_model(name)
    except Exception:  # noqa: BLE001 - a model that cannot be built here simply does not fit
        return None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    given = {k: tuple(v.shape) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    if set(expected) != set(given):
        return None
    differing = [k for k in expected if expected[k] != given[k]]
    if not differing:
        return Fit(name, "fits")
    if len(differing) <= 2:
        return Fit(name, "head differs", [f"{k}: file {given[k]} vs model {expected[k]}" for k in differing])
    return None
