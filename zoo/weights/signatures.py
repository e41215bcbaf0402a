"""Which architectures a state dict fits, from an index of key-and-shape signatures generated ahead of time.

Each architecture's record (scripts/generate_signatures.py writes them, built on the meta device) holds
hashes of its keys (`k`), of its keys with shapes (`f`), of its keys without the classifier (`b`), of its keys
with shapes without the classifier and with the first convolution's input channels left open (`s`), the
classifier's shapes (`h`) and the first convolution (`c`: key, input channels). A checkpoint is hashed the
same way: equal `f` is an exact fit; equal `k` and `s` a near miss (another head, other input channels);
its keys equal to an architecture's `b` a headless one. No model is built per call; this module imports
neither torch nor a model library.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

INDEX_PATH = Path(__file__).resolve().parents[2] / "plugins" / "signatures.json.gz"
SKIPPED_SUFFIX = "num_batches_tracked"  # BatchNorm counters: old files lack them, and they carry no weights

Shapes = Mapping[str, tuple[int, ...]]

# Ranks, best first: how closely a checkpoint fits an architecture.
EXACT, NEAR, HEADLESS, SAME_KEYS = "fits", "near miss", "headless", "same keys, other shapes"
RANKS = {EXACT: 0, NEAR: 1, HEADLESS: 2, SAME_KEYS: 3}


@dataclass(frozen=True)
class Candidate:
    """An architecture a checkpoint fits (`verdict`), and how it differs when it is not an exact fit."""

    architecture: str  # family:name, as the registry names it
    verdict: str
    differences: tuple[str, ...] = field(default=())

    @property
    def rank(self) -> int:
        return RANKS[self.verdict]

    def describe(self) -> str:
        extra = f" {', '.join(self.differences)}" if self.differences else ""
        return f"{self.architecture}{extra}"


def index_path() -> Path:
    """The index shipped with zoo_plugins (installed), or the source tree's copy."""
    try:
        from importlib.resources import files

        packaged = Path(str(files("zoo_plugins") / "signatures.json.gz"))
        if packaged.is_file():
            return packaged
    except (ModuleNotFoundError, TypeError):
        pass
    return INDEX_PATH


def shapes_of(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Key -> shape of anything with a `.shape` (tensors, meta tensors, safetensors slices), counters left out."""
    return {k: tuple(int(d) for d in v.shape) for k, v in state_dict.items() if not k.endswith(SKIPPED_SUFFIX)}


def _digest(lines: Iterable[str]) -> str:
    return hashlib.blake2b("\n".join(sorted(lines)).encode(), digest_size=8).hexdigest()


def _shape_line(key: str, shape: tuple[int, ...], open_channels: bool = False) -> str:
    dims = [str(d) for d in shape]
    if open_channels and len(dims) > 1:
        dims[1] = "*"
    return f"{key}:{'x'.join(dims)}"


def key_hash(shapes: Shapes) -> str:
    return _digest(shapes)


def full_hash(shapes: Shapes) -> str:
    return _digest(_shape_line(k, s) for k, s in shapes.items())


def body_hash(shapes: Shapes, head: Iterable[str], stem: str | None) -> str:
    """Keys with shapes, the head's keys left out and the stem's input channels open."""
    head = set(head)
    return _digest(_shape_line(k, s, k == stem) for k, s in shapes.items() if k not in head)


def record(shapes: Shapes, head: Iterable[str], stem: str | None, classes: int | None = None) -> dict[str, Any]:
    """One architecture's index record from its key -> shape map, classifier keys, first convolution and, when
    known, its number of classes (what the head's outputs count; a detector's box regressor counts 4 per class)."""
    head = sorted(k for k in head if k in shapes)
    entry: dict[str, Any] = {
        "k": key_hash(shapes),
        "f": full_hash(shapes),
        "s": body_hash(shapes, head, stem),
        "n": len(shapes),
    }
    if head:
        entry["b"] = _digest(k for k in shapes if k not in set(head))
        entry["h"] = {k: list(shapes[k]) for k in head}
    if stem is not None and stem in shapes and len(shapes[stem]) > 1:
        entry["c"] = [stem, shapes[stem][1]]
    if classes is not None and head:
        entry["nc"] = classes
    return entry


def signature_of(
    model: Any, classifier: Iterable[str] | None = None, head: Iterable[str] | None = None, classes: int | None = None
) -> dict[str, Any]:
    """The index record of a built model (on the meta device is enough): `classifier` names its head modules,
    or `head` its head keys; else the head is found by _head_keys."""
    import torch

    shapes = shapes_of(model.state_dict())
    modules = dict(model.named_modules())
    if head is not None:
        head = list(head)
    elif classifier is not None:
        head = [k for k in shapes for c in classifier if k.startswith(f"{c}.")]
    else:
        head = _head_keys(modules, shapes)
    stem = next(
        (
            f"{name}.weight"
            for name, module in modules.items()
            if isinstance(module, torch.nn.Conv2d | torch.nn.Conv3d) and module.in_channels == 3
        ),
        None,
    )
    return record(shapes, head, stem, classes)


def _head_keys(modules: dict, shapes: Shapes) -> list[str]:
    """The classifier's keys when no library says which they are: the last linear or convolution layer, and any
    other with its number of outputs (auxiliary heads), found in module order."""
    import torch

    layers = [
        (name, m)
        for name, m in modules.items()
        if isinstance(m, torch.nn.Linear | torch.nn.Conv2d) and f"{name}.weight" in shapes
    ]
    if not layers:
        return []
    classes = shapes[f"{layers[-1][0]}.weight"][0]
    if classes < 2:
        return []
    names = [name for name, _ in layers if shapes[f"{name}.weight"][0] == classes]
    return [k for k in shapes for name in names if k.rpartition(".")[0] == name]


@dataclass(frozen=True)
class Index:
    versions: dict[str, str]
    records: dict[str, dict[str, Any]]
    by_full: dict[str, list[str]]
    by_keys: dict[str, list[str]]
    by_body_keys: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.records)


@cache
def load_index(path: Path | None = None) -> Index:
    """The signature index, read once per process (a gzipped JSON file of a few hundred kB)."""
    from zoo.errors import ZooError

    path = path or index_path()
    try:
        data = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, ValueError, EOFError) as exc:
        raise ZooError(f"{path}: the signature index is missing or damaged ({exc}); reinstall zoo") from None
    records = data["architectures"]
    by_full: dict[str, list[str]] = {}
    by_keys: dict[str, list[str]] = {}
    by_body: dict[str, list[str]] = {}
    for name, entry in records.items():
        by_full.setdefault(entry["f"], []).append(name)
        by_keys.setdefault(entry["k"], []).append(name)
        if "b" in entry:
            by_body.setdefault(entry["b"], []).append(name)
    return Index(data["versions"], records, by_full, by_keys, by_body)


def identify(shapes: Shapes, index: Index | None = None) -> list[Candidate]:
    """Every architecture whose signature `shapes` fits, best fits first (see RANKS), each with its differences."""
    index = index or load_index()
    shapes = {k: tuple(s) for k, s in shapes.items() if not k.endswith(SKIPPED_SUFFIX)}
    keys, full = key_hash(shapes), full_hash(shapes)
    candidates = [Candidate(name, EXACT) for name in index.by_full.get(full, [])]
    seen = {c.architecture for c in candidates}
    bodies: dict[tuple, str] = {}

    def body(head: Iterable[str], stem: str | None) -> str:
        cache_key = (tuple(head), stem)
        if cache_key not in bodies:
            bodies[cache_key] = body_hash(shapes, head, stem)
        return bodies[cache_key]

    for name in index.by_keys.get(keys, []):
        if name in seen:
            continue
        entry = index.records[name]
        stem = entry.get("c", [None])[0]
        if body(entry.get("h", {}), stem) == entry["s"]:
            candidates.append(Candidate(name, NEAR, _differences(shapes, entry)))
        else:
            candidates.append(Candidate(name, SAME_KEYS))
    for name in index.by_body_keys.get(keys, []):
        entry = index.records[name]
        if body((), entry.get("c", [None])[0]) == entry["s"]:
            heads = sorted({k.rpartition(".")[0] for k in entry["h"]})
            candidates.append(Candidate(name, HEADLESS, (f"without its classifier ({', '.join(heads)})",)))
    return sorted(candidates, key=lambda c: (c.rank, c.architecture))


def _differences(shapes: Shapes, entry: dict[str, Any]) -> tuple[str, ...]:
    """`with a 10-class head`, `with in_chans=1`: how a near miss differs from the architecture's defaults."""
    result = []
    heads = {k: tuple(s) for k, s in entry.get("h", {}).items()}
    changed = [k for k, s in heads.items() if shapes.get(k) != s]
    weights = [k for k in changed if len(heads[k]) > 1 and heads[k][0] == entry.get("nc", heads[k][0])]
    weights = weights or [k for k in changed if len(heads[k]) > 1] or changed
    classes = sorted({shapes[k][0] for k in weights if shapes.get(k)})
    if classes:
        result.append(f"with a {'/'.join(map(str, classes))}-class head")
    if "c" in entry:
        stem, channels = entry["c"]
        given = shapes.get(stem)
        if given is not None and len(given) > 1 and given[1] != channels:
            result.append(f"with in_chans={given[1]}")
    return tuple(result)
