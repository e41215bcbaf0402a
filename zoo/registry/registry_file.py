"""Read and validate registry files (`registry.toml` and users' own); see docs/registry-format.md."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import tomllib
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from zoo.errors import RegistryFileError, UnsafeNameError
from zoo.files import write_text_atomic, zoo_home
from zoo.paths import safe_component
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
    "params": (int, False),
    "description": (str, False),
    "weights": (list, False),
}
_WEIGHT_FIELDS: dict[str, tuple[type | tuple[type, ...], bool]] = {
    "tag": (str, True),
    "url": (str, True),
    "file_name": (str, False),
    "mirrors": (list, False),
    "legacy_urls": (list, False),
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
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Schemes that name no place to fetch a file from (a browser's script or inline data), refused outright; any
# other scheme is fetched by the weight source registered for it (http, https and file are built in).
REFUSED_SCHEMES = frozenset({"javascript", "vbscript", "data", "about", "blob", "mailto", "jar", "view-source"})
NETWORK_SCHEMES = frozenset({"http", "https", "ftp", "ftps", "sftp", "s3", "gs"})  # need a host


def _extra_fields(record: type, listed: frozenset[str], internal: tuple[str, ...]) -> dict:
    """Fields of a record dataclass the tables above do not list (yet), typed from their annotations."""
    kinds = (("tuple", list), ("Mapping", dict), ("dict", dict), ("bool", bool), ("float", (int, float)))
    kinds += (("int", int), ("str", str))
    extra = {}
    for field in dataclasses.fields(record):
        if field.name not in listed and field.name not in internal:
            annotation = str(field.type)
            extra[field.name] = (next((k for word, k in kinds if word in annotation), object), False)
    return extra


_MODEL_LISTED, _WEIGHT_LISTED = frozenset(_MODEL_FIELDS), frozenset(_WEIGHT_FIELDS)
_MODEL_FIELDS |= _extra_fields(ModelEntry, _MODEL_LISTED, ("plugin",))
_WEIGHT_FIELDS |= _extra_fields(WeightSet, _WEIGHT_LISTED, ())


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
        text = json.dumps(data)
    except (TypeError, ValueError):
        return data  # TOML dates have no JSON form: not cached (validation then names the field)
    try:
        write_text_atomic(cache, text, root=zoo_home())
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
    except RecursionError:
        raise RegistryFileError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def parse_registry(data: dict[str, Any], source: str, plugin: str, family: str | None = None) -> list[ModelEntry]:
    """Turn parsed TOML data into model entries (only `family`'s when given), checking every field."""
    if not isinstance(data, dict):
        raise RegistryFileError(f"{source}: must be a TOML document (a table), got {type(data).__name__}")
    version = data.get("format", FORMAT_VERSION)
    if type(version) is not int or version != FORMAT_VERSION:
        raise RegistryFileError(f"{source}: field 'format' is {version!r}; this zoo reads format {FORMAT_VERSION}")
    models = data.get("models", [])
    if not isinstance(models, list):
        raise RegistryFileError(f"{source}: 'models' must be an array of tables ([[models]])")
    entries = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(models):
        if family is not None and isinstance(raw, dict) and raw.get("family") != family:
            continue
        named = isinstance(raw, dict) and "name" in raw
        where = f"{source}: models[{index}]" + (f" ({_label(raw['name'])})" if named else "")
        entry = _parse_model(raw, where, plugin)
        key = entry.qualified_name
        if key in seen:
            raise RegistryFileError(f"{where}: field 'name': {key} is already defined by models[{seen[key]}]")
        seen[key] = index
        entries.append(entry)
    return entries


def _label(name: Any) -> str:
    """A model's name as the errors show it: as it is when printable, else its repr (one line, whatever it holds)."""
    return name if isinstance(name, str) and name.isprintable() and len(name) <= 80 else repr(name)[:80]


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
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            wanted = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise RegistryFileError(f"{where}: field {name!r} must be {wanted}, got {value!r}")


def _parse_model(raw: Any, where: str, plugin: str) -> ModelEntry:
    _check_fields(raw, _MODEL_FIELDS, where)
    for name in ("name", "family", "builder"):
        if not raw[name].strip():
            raise RegistryFileError(f"{where}: field {name!r} is empty")
    if "." in raw["name"] or ":" in raw["name"]:
        raise RegistryFileError(f"{where}: field 'name' must not contain '.' or ':' (they separate tag and family)")
    if ":" in raw["family"]:
        raise RegistryFileError(f"{where}: field 'family' must not contain ':' (it separates family and name)")
    for name in ("name", "family"):
        _safe(raw[name], where, name)  # `zoo convert` writes DIR/<family>/<name>.onnx
    if raw.get("params") is not None and raw["params"] <= 0:
        raise RegistryFileError(f"{where}: field 'params' must be positive, got {raw['params']!r}")
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
        params=raw.get("params"),
        plugin=plugin,
        description=raw.get("description", ""),
        **_extra(raw, _MODEL_LISTED),
    )


def _parse_weights(raw: Any, where: str) -> WeightSet:
    _check_fields(raw, _WEIGHT_FIELDS, where)
    fmt = raw.get("format", "pth")
    if fmt not in WEIGHT_FORMATS:
        raise RegistryFileError(f"{where}: field 'format' must be one of {', '.join(WEIGHT_FORMATS)}, got {fmt!r}")
    if "." in raw["tag"] or not raw["tag"]:
        raise RegistryFileError(f"{where}: field 'tag' must be non-empty and contain no '.', got {raw['tag']!r}")
    _safe(raw["tag"], where, "tag")
    if raw.get("file_name"):
        _safe(raw["file_name"], where, "file_name")
    _check_url(raw["url"], where, "url")
    for index, mirror in enumerate(_strings(raw, "mirrors", where)):
        _check_url(mirror, where, f"mirrors[{index}]")
    for name, (shortest, longest) in (("sha256", (64, 64)), ("hash_prefix", (6, 64))):
        value = raw.get(name)
        if value is not None and (set(value.lower()) - _HEX or not shortest <= len(value) <= longest):
            size = "64" if shortest == longest else f"{shortest} to {longest}"
            raise RegistryFileError(f"{where}: field {name!r} must be {size} hex digits, got {value!r}")
    input_size = _numbers(raw, "input_size", where, int)
    if input_size is not None and (len(input_size) not in (3, 4) or min(input_size) <= 0):
        raise RegistryFileError(
            f"{where}: field 'input_size' must be [channels, height, width] or, for video, "
            f"[channels, frames, height, width], got {list(input_size)!r}"
        )
    for name in ("size", "num_classes", "params"):
        if raw.get(name) is not None and raw[name] <= 0:
            raise RegistryFileError(f"{where}: field {name!r} must be positive, got {raw[name]!r}")
    try:
        return _weight_set(raw, fmt, input_size, where)
    except UnsafeNameError as exc:  # the file name taken from the URL
        raise RegistryFileError(f"{where}: field 'url': {exc}") from None


def _weight_set(raw: dict, fmt: str, input_size: tuple | None, where: str) -> WeightSet:
    return WeightSet(
        tag=raw["tag"],
        url=raw["url"],
        file_name=raw.get("file_name", ""),
        mirrors=tuple(_strings(raw, "mirrors", where)),
        legacy_urls=tuple(_strings(raw, "legacy_urls", where)),
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
        **_extra(raw, _WEIGHT_LISTED),
    )


def _extra(raw: dict, listed: frozenset[str]) -> dict[str, Any]:
    """The values of fields the records have but the tables above do not list (lists become tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items() if k not in listed}


def _safe(value: str, where: str, field: str) -> None:
    """`value` must be a single path component (zoo.paths.safe_component): else an error naming the field."""
    try:
        safe_component(value, f"field {field!r}")
    except UnsafeNameError as exc:
        raise RegistryFileError(f"{where}: {exc}") from None


def _check_url(url: str, where: str, field: str) -> None:
    """A URL zoo can fetch from: a scheme, no spaces or control characters, a host for network schemes."""

    def refuse(problem: str) -> None:
        raise RegistryFileError(f"{where}: field {field!r}: {url!r} {problem}")

    if _SPACE_OR_CONTROL.search(url):
        refuse("contains spaces or control characters; percent-encode them (%20)")
    match = _SCHEME.match(url)
    if match is None:
        refuse("has no scheme; give a full URL such as https://host/file.pth or file:///path/file.pth")
    scheme = match.group(1).lower()
    if len(scheme) == 1:
        refuse("looks like a Windows path; give it as file:///C:/path/file.pth")
    if scheme in REFUSED_SCHEMES:
        refuse(f"is a {scheme}: URL, not a place to fetch weights from; give an https:// or file:// URL")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError as exc:
        refuse(f"is not a valid URL ({exc})")
    if scheme in NETWORK_SCHEMES and not parts.hostname:
        refuse(f"has no host; {scheme}: URLs look like {scheme}://host/path/file.pth")


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
