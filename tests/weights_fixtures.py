"""Real checkpoints and registry files for fetch/load tests: generated, hashed, and served on loopback.

from weights_fixtures import checkpoint_bytes, registry_entry, sha256_hex, write_registry
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path


def sha256_hex(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


def resnet18_state_dict(seed: int = 0) -> dict:
    import torch
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.resnet18().state_dict()


def tiny_state_dict(seed: int = 0) -> dict:
    """A small real layout: conv + BatchNorm + linear (like a torchvision stem and head)."""
    import torch

    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Flatten(), torch.nn.Linear(8, 4)
    )
    return model.state_dict()


def checkpoint_bytes(state_dict: dict, wrap: str | None = None) -> bytes:
    """`torch.save` output (optionally as `{wrap: state_dict}`), in memory."""
    import torch

    buffer = io.BytesIO()
    torch.save({wrap: state_dict} if wrap else state_dict, buffer)
    return buffer.getvalue()


def hashed_name(stem: str, data: bytes, suffix: str = ".pth") -> str:
    """torchvision's convention: `<stem>-<first 8 hex digits of sha256><suffix>`."""
    return f"{stem}-{sha256_hex(data)[:8]}{suffix}"


def registry_entry(
    name: str,
    url: str,
    data: bytes | None = None,
    *,
    family: str = "torchvision",
    builder: str = "torchvision.models:resnet18",
    tag: str = "v1",
    mirrors: list[str] | None = None,
    num_classes: int | None = None,
    params: int | None = None,
    full_hash: bool = True,
) -> dict:
    """One `[[models]]` table (as a dict) whose weight set carries the generated file's own sha256."""
    weights: dict = {"tag": tag, "url": url}
    if data is not None and full_hash:
        weights["sha256"] = sha256_hex(data)
        weights["size"] = len(data)
    if mirrors:
        weights["mirrors"] = mirrors
    if params:
        weights["params"] = params
    entry = {"name": name, "family": family, "builder": builder, "weights": [weights]}
    if num_classes is not None:
        entry["builder_kwargs"] = {"num_classes": num_classes}
    return entry


def write_registry(path: Path, models: list[dict]) -> Path:
    """Write a registry TOML file (format 1) for ZOO_REGISTRY."""
    lines = ["format = 1", ""]
    for model in models:
        lines.append("[[models]]")
        lines += [f"{k} = {_toml(v)}" for k, v in model.items() if k != "weights"]
        for weights in model.get("weights", []):
            lines.append("[[models.weights]]")
            lines += [f"{k} = {_toml(v)}" for k, v in weights.items()]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers and lists of them read the same in TOML
