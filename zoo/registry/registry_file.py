"""Read and validate registry files (`registry.toml` and users' own); see docs/registry-format.md."""

from __future__ import annotations

import functools
import json
import tomllib
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zoo.errors import RegistryFileError
from zoo.files import write_text_atomic, zoo_home
from zoo.registry.records import TASKS, WEIGHT_FORMATS, ModelEntry, WeightSet

FORMAT_VERSION = 1

_MODEL_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    # field: (type, required)
    "name": (str, True),
    "family": (str, True),
    "builder": (str, True),
    "builder_kwargs": (dict, False),
    "aliases": (list, False),
    "remap": (str, False),
    "tags": (list, False),
    "task": (str, False),
    "description": (str, False),
    "weights": (list, False),
}
_WEIGHT_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "tag": (str, True),
    "url": (str, True),
    "file_name": (str, False),
    "mirrors": (list, False),
    "sha256": (str, False),
    "hash_prefix": (str, False),
    "size": (int, False),
    "format": (str, False),
    "num_classes": (int, False),
    "input_size": (list, False),
    "mean": (list, False),
    "std": (list, False),
    "interpolation": (str, False),
    "license": (str, False),
    "top1": ((int, float), False),
    "top5": ((int, float), False),
    "params": (int, False),
    "gmacs": ((int, float), False),
    "file_size_mb": ((int, float), False),
    "aliases": (list, False),
    "meta": (dict, False),
    "builder_kwargs": (dict, False),
}
_HEX = set("0123456789abcdef")


def read_registry_file(path: str | Path, plugin: str, family: str | None = None) -> list[ModelEntry]:
    """Parse a registry file into model entries contributed by `plugin` (only `family`'s when given).

    Raises RegistryFileError, naming the file, the entry and the field, on any fault.
    """
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise RegistryFileError(f"{path}: registry file not found") from None
    data = _read_toml(path, stat.st_mtime_ns, stat.st_size)
    return parse_registry(data, source=str(path), plugin=plugin, family=family)


@functools.lru_cache(maxsize=16)
def _read_toml(path: Path, mtime_ns: int, size: int) -> dict[str, Any]:
    """The parsed file, cached in memory and as JSON on disk while its mtime and size stay the same.

    tomllib takes ~60 ms for the shipped registry and JSON ~2 ms: this keeps `zoo list` fast.
    """
    cache = _json_cache_path(path, mtime_ns, size)
    try:
        return json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    data = _parse_toml(path)
    try:
        write_text_atomic(cache, json.dumps(data))
    except OSError:
        pass  # a read-only cache only costs speed
    return data


def _json_cache_path(path: Path, mtime_ns: int, size: int) -> Path:
    path_key = f"{zlib.crc32(str(path).encode()):08x}"
    return zoo_home() / "registry-cache" / f"{path.stem}-{path_key}-{mtime_ns}-{size}.json"


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryFileError(f"{path}: registry file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryFileError(f"{path}: cannot read registry file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryFileError(f"{path}: not valid TOML: {exc}") from None


def parse_registry(data: dict[str, Any], source: str, plugin: str, family: str | None = None) -> list[ModelEntry]:
    """Turn parsed TOML data into model entries (only `family`'s when given), checking every field."""
    version = data.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise RegistryFileError(f"{source}: field 'format' is {version!r}; this zoo reads format {FORMAT_VERSION}")
    models = data.get("models", [])
    if not isinstance(models, list):
        raise RegistryFileError(f"{source}: 'models' must be an array of tables ([[models]])")
    entries = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(models):
        if family is not None and isinstance(raw, dict) and raw.get("family") != family:
            continue
        where = f"{source}: models[{index}]" + (f" ({raw['name']})" if isinstance(raw, dict) and "name" in raw else "")
        entry = _parse_model(raw, where, plugin)
        key = entry.qualified_name
        if key in seen:
            raise RegistryFileError(f"{where}: field 'name': {key} is already defined by models[{seen[key]}]")
        seen[key] = index
        entries.append(entry)
    return entries


def _check_fields(raw: Any, fields: dict, where: str) -> None:
    if not isinstance(raw, dict):
        raise RegistryFileError(f"{where}: must be a table, got {type(raw).__name__}")
    for name in raw:
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise RegistryFileError(f"{where}: unknown field {name!r} (known fields: {known})")
    for name, (kind, required) in fields.items():
        if name not in raw:
            if required:
                raise RegistryFileError(f"{where}: missing required field {name!r}")
            continue
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise RegistryFileError(f"{where}: field {name!r} must be {wanted}, got {value!r}")


def _parse_model(raw: Any, where: str, plugin: str) -> ModelEntry:
    _check_fields(raw, _MODEL_FIELDS, where)
    for name in ("name", "family", "builder"):
        if not raw[name].strip():
            raise RegistryFileError(f"{where}: field {name!r} is empty")
    if "." in raw["name"] or ":" in raw["name"]:
        raise RegistryFileError(f"{where}: field 'name' must not contain '.' or ':' (they separate tag and family)")
    if raw.get("task", TASKS[0]) not in TASKS:
        raise RegistryFileError(f"{where}: field 'task' must be one of {', '.join(TASKS)}, got {raw['task']!r}")
    weights = tuple(_parse_weights(w, f"{where} weights[{i}]") for i, w in enumerate(raw.get("weights", [])))
    tags = [w.tag for w in weights]
    duplicate = next((t for t in tags if tags.count(t) > 1), None)
    if duplicate:
        raise RegistryFileError(f"{where}: field 'weights': tag {duplicate!r} appears twice")
    return ModelEntry(
        name=raw["name"],
        family=raw["family"],
        builder=raw["builder"],
        builder_kwargs=raw.get("builder_kwargs", {}),
        weights=weights,
        aliases=tuple(_strings(raw, "aliases", where)),
        remap=raw.get("remap"),
        tags=tuple(_strings(raw, "tags", where)),
        task=raw.get("task", TASKS[0]),
        plugin=plugin,
        description=raw.get("description", ""),
    )


def _parse_weights(raw: Any, where: str) -> WeightSet:
    _check_fields(raw, _WEIGHT_FIELDS, where)
    fmt = raw.get("format", "pth")
    if fmt not in WEIGHT_FORMATS:
        raise RegistryFileError(f"{where}: field 'format' must be one of {', '.join(WEIGHT_FORMATS)}, got {fmt!r}")
    if "." in raw["tag"] or not raw["tag"]:
        raise RegistryFileError(f"{where}: field 'tag' must be non-empty and contain no '.', got {raw['tag']!r}")
    for name, length in (("sha256", 64), ("hash_prefix", None)):
        value = raw.get(name)
        if value is not None and (set(value.lower()) - _HEX or (length and len(value) != length)):
            size = f"{length} " if length else ""
            raise RegistryFileError(f"{where}: field {name!r} must be {size}hex digits, got {value!r}")
    input_size = _numbers(raw, "input_size", where, int)
    if input_size is not None and (len(input_size) not in (3, 4) or min(input_size) <= 0):
        raise RegistryFileError(
            f"{where}: field 'input_size' must be [channels, height, width] or, for video, "
            f"[channels, frames, height, width], got {list(input_size)!r}"
        )
    for name in ("size", "num_classes", "params"):
        if raw.get(name) is not None and raw[name] <= 0:
            raise RegistryFileError(f"{where}: field {name!r} must be positive, got {raw[name]!r}")
    return WeightSet(
        tag=raw["tag"],
        url=raw["url"],
        file_name=raw.get("file_name", ""),
        mirrors=tuple(_strings(raw, "mirrors", where)),
        sha256=raw.get("sha256"),
        hash_prefix=raw.get("hash_prefix"),
        size=raw.get("size"),
        format=fmt,
        num_classes=raw.get("num_classes"),
        input_size=input_size,
        mean=_numbers(raw, "mean", where, float),
        std=_numbers(raw, "std", where, float),
        interpolation=raw.get("interpolation"),
        license=raw.get("license"),
        top1=raw.get("top1"),
        top5=raw.get("top5"),
        params=raw.get("params"),
        gmacs=raw.get("gmacs"),
        file_size_mb=raw.get("file_size_mb"),
        aliases=tuple(_strings(raw, "aliases", where)),
        meta=raw.get("meta", {}),
        builder_kwargs=raw.get("builder_kwargs", {}),
    )


def _strings(raw: dict, name: str, where: str) -> list[str]:
    values = raw.get(name, [])
    if not all(isinstance(v, str) for v in values):
        raise RegistryFileError(f"{where}: field {name!r} must be a list of strings, got {values!r}")
    return values


def _numbers(raw: dict, name: str, where: str, cast: Callable) -> tuple | None:
    values = raw.get(name)
    if values is None:
        return None
    ok = int if cast is int else (int, float)
    if not all(isinstance(v, ok) and not isinstance(v, bool) for v in values):
        raise RegistryFileError(f"{where}: field {name!r} must be a list of numbers, got {values!r}")
    return tuple(cast(v) for v in values)
