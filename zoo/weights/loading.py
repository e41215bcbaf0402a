"""The one loader for every checkpoint zoo touches: safe by default, and it says what it unwrapped.

Before anything is unpickled or allocated, the file's layout is checked: its kind from its first bytes (a
zip archive from torch.save, a legacy pickle, or .safetensors); a zip's member names (no absolute paths,
`..`, backslashes, duplicates) and sizes (inside the file, not overlapping); the globals its pickle names
(read by zoo.weights.pickle_scan, never executed) and the storage sizes it claims against the bytes that are
there. Then `torch.load(weights_only=True)` (mmap for zip archives) or safetensors reads it. Whatever is
wrong ends as one CheckpointError (exit code 6) naming the file; a pickle that needs an arbitrary global is
refused by name unless the caller passes `trust_pickle=True` for a file they vouch for.
"""

from __future__ import annotations

import io
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import CheckpointError, ZooError
from zoo.weights.unwrap import CONTAINER_KEYS, backbone_of, unwrap, with_metadata  # noqa: F401 - re-exported

if TYPE_CHECKING:
    import torch
    from torch import nn

    from zoo.registry.records import Selection

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar", ".pkl")
# Data-only globals torch's weights-only loader refuses but training checkpoints hold: timm's train script
# saves its argparse.Namespace as `args` (built from its attribute dict; no code of the file runs).
EXTRA_SAFE_GLOBALS = frozenset({"argparse.Namespace"})
MAX_DEFLATE_RATIO = 1100  # deflate cannot expand more than ~1032:1; a member claiming more lies about its size


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint's pickle needs globals outside torch's weights-only allow-list."""

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
    ema: bool | None = None  # True: EMA weights chosen; False: the raw ones though EMA weights are there
    packed: dict[str, Any] = field(default_factory=dict)  # quantized modules' packed parameters (not tensors)

    def loadable(self) -> dict[str, Any]:
        """What `load_state_dict` takes: the tensors and the packed parameters (`_metadata` kept)."""
        if not self.packed:
            return self.state_dict
        return with_metadata({**self.state_dict, **self.packed}, getattr(self.state_dict, "_metadata", None))

    def notes(self) -> list[str]:
        """What was unwrapped, in words for a report (`zoo adapt` prints them)."""
        if not self.unwrapped:
            return []
        which = {True: "; its EMA weights (--no-ema for the raw ones)", False: "; the raw weights, not its EMA"}
        return [f"{self.path.name}: unwrapped {' -> '.join(self.unwrapped)}{which.get(self.ema, '')}"]


def detect_format(path: Path) -> str:
    """ "zip" (torch.save), "legacy" (torch.save before 1.6) or "safetensors", from the file's first bytes."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    with open(path, "rb") as stream:
        head = stream.read(16)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "legacy"
    if len(head) >= 9 and head[8:9] == b"{":
        return "safetensors"
    kind = "a .safetensors file" if path.suffix == ".safetensors" else "a PyTorch checkpoint"
    raise CheckpointError(
        f"{path}: not {kind}: it starts with bytes {head[:8].hex()}, neither a zip archive (torch.save), "
        "a pickle (torch.save before 1.6) nor a safetensors header"
    )


def load_checkpoint(path: str | Path, *, trust_pickle: bool = False, ema: bool | None = None) -> Checkpoint:
    """Load `path` safely into a Checkpoint (state dict on CPU), unwrapping training checkpoints (unwrap.py).

    `ema`: None takes a checkpoint's EMA weights when it has some, True insists on them, False takes the raw ones.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no such checkpoint file: {path}")
    fmt = detect_format(path)
    if fmt == "safetensors":
        obj = _load_safetensors(path)
    elif fmt == "zip":
        obj = _load_zip(path, trust_pickle)
    else:
        obj = _load_legacy(path, trust_pickle)
    found = unwrap(obj, str(path), ema)
    kind = "safetensors" if fmt == "safetensors" else "pickle"
    return Checkpoint(found.state_dict, path, kind, found.steps, found.ema, found.packed)


def check_checkpoint(path: str | Path) -> str:
    """Check a checkpoint's layout without loading it (nothing unpickled, nothing allocated from what it claims):
    its format, or the CheckpointError load_checkpoint would raise for its layout (`zoo import` calls it)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "zip":
        data_pkl, records = check_zip(path)
        _check_pickle(path, data_pkl, False, records=records)
    elif fmt == "legacy":
        _check_pickle(path, path.read_bytes(), False, legacy=True)
    else:
        from safetensors import safe_open

        try:
            with safe_open(str(path), "pt") as opened:
                opened.keys()
        except Exception as exc:  # noqa: BLE001 - SafetensorError and whatever else a damaged header raises
            raise CheckpointError(f"{path}: not a valid .safetensors file: {_first_line(exc)}") from None
    return fmt


def _load_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - SafetensorError and whatever else a damaged file raises
        raise CheckpointError(f"{path}: not a valid .safetensors file: {_first_line(exc)}") from None


def _load_zip(path: Path, trust_pickle: bool) -> Any:
    import torch

    data_pkl, records = check_zip(path)
    _check_pickle(path, data_pkl, trust_pickle, records=records)
    with _allowing_extras():
        try:
            return torch.load(path, map_location="cpu", weights_only=not trust_pickle, mmap=True)
        except Exception as exc:  # noqa: BLE001 - any failure of the reader means the file cannot be used
            raise _reader_error(path, exc) from None


def _load_legacy(path: Path, trust_pickle: bool) -> Any:
    """torch.save's legacy format, read from memory (the file is read whole anyway): a claimed length in it
    then cannot make a file object allocate more than the file has."""
    import torch

    data = path.read_bytes()
    _check_pickle(path, data, trust_pickle, legacy=True)
    with _allowing_extras():
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=not trust_pickle)
        except Exception as exc:  # noqa: BLE001 - any failure of the reader means the file cannot be used
            raise _reader_error(path, exc) from None


def check_zip(path: Path) -> tuple[bytes, dict[str, int]]:
    """A torch.save archive's data.pkl and its record sizes, after checking its members' names and sizes."""
    import zipfile

    size = path.stat().st_size
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
        raise CheckpointError(f"{path}: a damaged or truncated zip archive (torch.save format): {exc}") from None
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        for name in names:
            if _odd_member_name(name):
                raise CheckpointError(
                    f"{path}: refused: the archive has a member named {name!r} (absolute, '..', a backslash or a "
                    "control character); torch.save never writes one"
                )
        if len(set(names)) != len(names):
            twice = sorted(n for n, count in Counter(names).items() if count > 1)
            raise CheckpointError(f"{path}: refused: the archive names a member twice ({', '.join(twice[:3])})")
        roots = {name.split("/", 1)[0] for name in names}
        pickles = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
        if len(roots) != 1 or len(pickles) != 1:
            folders = ", ".join(sorted(roots)[:4]) or "none"
            raise CheckpointError(
                f"{path}: not a torch.save archive: it needs one top-level folder with a data.pkl "
                f"(found folders {folders}; data.pkl {'missing' if not pickles else 'twice'})"
            )
        end = 0
        for info in sorted(infos, key=lambda i: i.header_offset):
            start = info.header_offset
            stop = start + 30 + len(info.filename.encode()) + info.compress_size
            if start < end or stop > size:
                where = "overlaps the one before it" if start < end else f"ends past the file's {size:,} bytes"
                raise CheckpointError(f"{path}: damaged zip archive: member {info.filename!r} {where}")
            stored = info.compress_type == zipfile.ZIP_STORED
            if (stored and info.file_size != info.compress_size) or (
                not stored and info.file_size > info.compress_size * MAX_DEFLATE_RATIO + 1024
            ):
                raise CheckpointError(
                    f"{path}: damaged zip archive: member {info.filename!r} claims {info.file_size:,} bytes "
                    f"from {info.compress_size:,}"
                )
            end = stop
        root = pickles[0].split("/")[0]
        records = {n.removeprefix(f"{root}/data/"): i.file_size for n, i in zip(names, infos, strict=True)}
        try:
            return archive.read(pickles[0]), records
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise CheckpointError(f"{path}: damaged zip archive: {pickles[0]}: {exc}") from None


def _odd_member_name(name: str) -> bool:
    parts = name.split("/")
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("", ".", "..") for part in parts[:-1])
        or parts[-1] in (".", "..")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


def _check_pickle(
    path: Path, data: bytes, trust_pickle: bool, records: dict[str, int] | None = None, legacy: bool = False
) -> None:
    """Refuse, before torch reads it, a pickle that names unsafe globals or claims storages the file lacks."""
    from zoo.weights import pickle_scan

    stream = io.BytesIO(data)
    result = pickle_scan.Scan()
    try:
        if legacy:
            magic = pickle_scan.scan(stream).result
            if magic != pickle_scan.LEGACY_MAGIC:
                raise CheckpointError(f"{path}: a pickle, but not one torch.save wrote (no torch.save magic number)")
            for _ in range(2):  # protocol version, system info
                pickle_scan.scan(stream)
        pickle_scan.scan(stream, result)
        keys = pickle_scan.scan(stream).result if legacy else None
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or malformed pickle raises many kinds of errors
        raise CheckpointError(f"{path}: the pickle inside is damaged or cut short ({_first_line(exc)})") from None
    if not trust_pickle:
        offending = pickle_scan.unsafe(result.globals, EXTRA_SAFE_GLOBALS)
        if offending:
            raise _unsafe(path, offending)
    if records is not None:
        for storage in result.storages.values():
            size = records.get(storage.key)
            if size is None or storage.nbytes > size:
                found = "missing" if size is None else f"{size:,} bytes"
                raise CheckpointError(
                    f"{path}: damaged checkpoint: tensor data {storage.key} claims {storage.nbytes:,} bytes, "
                    f"the archive has {found}"
                )
    if legacy:
        claimed = sum(s.nbytes + 8 for s in result.storages.values())
        left = len(data) - stream.tell()
        if not isinstance(keys, list) or claimed > left:
            raise CheckpointError(
                f"{path}: damaged or cut short: its tensors claim {claimed:,} bytes, the file has {max(left, 0):,} left"
            )


def _unsafe(path: Path, offending: list[str]) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(
        f"{path}: refused to unpickle: it needs {', '.join(offending)}, which torch's weights-only loader "
        "does not allow (it could run arbitrary code; nothing was executed). If you trust this file, "
        "pass --trust-pickle (trust_pickle=True)"
    )


def _reader_error(path: Path, exc: Exception) -> ZooError:
    """torch.load's exception as zoo's one-line error (an unsafe global, if that is what it was, named)."""
    import pickle

    message = str(exc)
    if isinstance(exc, pickle.UnpicklingError) and "Unsupported global" in message:
        return _unsafe(path, [_global_from_message(message)])
    return CheckpointError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if "Weights only load failed" not in line and "In PyTorch 2.6" not in line]
    return ((useful or lines or [type(exc).__name__])[0])[:300]


def _allowing_extras():
    """torch's safe_globals context with EXTRA_SAFE_GLOBALS (those importable here)."""
    import importlib

    from torch.serialization import safe_globals

    objects = []
    for qualified in EXTRA_SAFE_GLOBALS:
        module, _, name = qualified.rpartition(".")
        objects.append(getattr(importlib.import_module(module), name))
    return safe_globals(objects)


def unsafe_globals(path: Path) -> list[str]:
    """The globals a checkpoint's pickle needs beyond torch's allow-list (read, not executed)."""
    from zoo.weights import pickle_scan

    try:
        if detect_format(path) == "zip":
            data, _ = check_zip(path)
            return pickle_scan.unsafe(pickle_scan.scan(io.BytesIO(data)).globals, EXTRA_SAFE_GLOBALS)
        stream = io.BytesIO(path.read_bytes())
        found = pickle_scan.Scan()
        for _ in range(4):
            pickle_scan.scan(stream, found)
        return pickle_scan.unsafe(found.globals, EXTRA_SAFE_GLOBALS)
    except Exception:  # noqa: BLE001 - not a readable pickle: nothing to name
        return []


def _global_from_message(message: str) -> str:
    for line in message.splitlines():
        if "GLOBAL" in line:
            return line.split("GLOBAL", 1)[1].strip().split(" ")[0]
    return "an unsupported global"


def load_weights(
    name_or_path: str | Path, *, trust_pickle: bool = False, ema: bool | None = None
) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, or of a registry name's weights (fetched into the cache first)."""
    path = Path(name_or_path)
    if not path.is_file():
        from zoo.weights.fetching import fetch

        path = fetch(str(name_or_path)).path
    return load_checkpoint(path, trust_pickle=trust_pickle, ema=ema).state_dict


def load_pretrained(model: nn.Module, selection: Selection, *, trust_pickle: bool = False) -> nn.Module:
    """Fetch the selection's weights and load them into `model` strictly (remapped if the entry names a remap)."""
    from zoo.weights.fetching import fetch

    result = fetch(selection)
    state_dict = load_checkpoint(result.path, trust_pickle=trust_pickle).loadable()
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
    """`model.load_state_dict(state_dict, strict=True)` with an error that lists what does not fit.

    Into a model whose parameters are on the meta device, the tensors themselves go (`assign=True`), cast to
    the model's dtypes as a copy into real parameters would: nothing is allocated twice.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and hasattr(v, "shape") and tuple(getattr(state_dict[k], "shape", ())) != tuple(v.shape)
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
    on_meta = any(p.is_meta for p in model.parameters())
    if on_meta:
        state_dict = _cast_like(state_dict, expected)
    model.load_state_dict(state_dict, strict=True, assign=on_meta)


def _cast_like(state_dict: dict, expected: dict) -> dict:
    """`state_dict` with each floating tensor in the dtype of the model's own (its `_metadata` kept)."""
    import torch

    def like(value, own):
        if not (isinstance(value, torch.Tensor) and isinstance(own, torch.Tensor)):
            return value  # a packed parameter (quantized modules), or a key the model lacks
        floating = value.is_floating_point() and own.is_floating_point()
        return value.to(own.dtype) if floating and value.dtype != own.dtype else value

    cast = {key: like(value, expected.get(key)) for key, value in state_dict.items()}
    return with_metadata(cast, getattr(state_dict, "_metadata", None))
