"""Catalogue index files: a family's generated catalogue in a form that loads fast, and installed versions.

An index is JSON: a header (family, the library and version it was generated from, the generator) and
`models`, one record per line, in the field names of docs/registry-format.md. The rows were validated by
`parse_registry` and normalised by the records' own constructors when the index was written, so reading
one rebuilds the records directly: the whole catalogue in ~40 ms, where TOML and validation took ~1 s.
"""

from __future__ import annotations

import json
import marshal
import os
import sys
import zlib
from collections.abc import Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from zoo.errors import RegistryFileError
from zoo.files import replacing, write_text_atomic, zoo_home
from zoo.registry.records import ModelEntry, WeightSet
from zoo.registry.registry_file import parse_registry

INDEX_FORMAT = 1


def write_index(path: Path, header: dict[str, Any], rows: list[dict]) -> list[dict]:
    """Write `rows`, normalised (see normalised_rows), with `header`, as the index at `path`; return them."""
    rows = normalised_rows(rows, str(path))
    head = json.dumps({"index_format": INDEX_FORMAT, **header})
    lines = [json.dumps(row, separators=(",", ":")) for row in rows]
    write_text_atomic(path, head[:-1] + ', "models": [\n' + ",\n".join(lines) + "\n]}\n")
    return rows


def normalised_rows(rows: list[dict], source: str) -> list[dict]:
    """`rows` validated as registry-file models, as the fields of the records they make that differ from the
    defaults, derived ones included (file names, hash prefixes): what entries_from_rows takes without checks."""
    return [record_row(entry) for entry in parse_registry({"models": rows}, source=source, plugin="")]


def record_row(entry: ModelEntry) -> dict[str, Any]:
    """A model entry's fields that differ from the defaults (weights likewise), plugin left out, as JSON data."""
    row = _changed(entry, _MODEL_DEFAULTS)
    row.pop("plugin", None)
    if entry.weights:
        row["weights"] = [_changed(w, _WEIGHT_DEFAULTS) for w in entry.weights]
    return row


def _changed(record: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    row = {}
    for name, default in defaults.items():
        value = getattr(record, name)
        if name != "weights" and value != default:
            row[name] = (
                dict(value) if isinstance(value, Mapping) else list(value) if isinstance(value, tuple) else value
            )
    return row


def read_index(path: Path) -> dict[str, Any]:
    """The index at `path` (header fields and `models`); RegistryFileError if it is unreadable."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise RegistryFileError(f"{path}: catalogue index not found") from None
    except (OSError, ValueError) as exc:
        raise RegistryFileError(f"{path}: not a catalogue index ({exc})") from None
    if not isinstance(data, dict) or data.get("index_format") != INDEX_FORMAT:
        raise RegistryFileError(f"{path}: not a catalogue index of format {INDEX_FORMAT}")
    return data


def load_index(path: Path) -> dict[str, Any]:
    """read_index's result with its rows prepared (see _prepared), through a marshal copy under ZOO_HOME
    keyed on the file's path, mtime and size and on the Python version: ~3x quicker than JSON, and
    entries_from_rows has nothing left to convert. A missing or damaged copy is written again."""
    stat = path.stat()
    key = f"{path.stem}-{zlib.crc32(str(path).encode()):08x}-{stat.st_mtime_ns}-{stat.st_size}"
    copy = zoo_home() / "catalogue-cache" / f"{key}-py{sys.version_info[0]}{sys.version_info[1]}.marshal"
    try:
        data = marshal.loads(copy.read_bytes())
        if isinstance(data, dict) and data.get("prepared") is True:
            return data
    except Exception:  # noqa: BLE001 - missing, cut short or from elsewhere: read the index again
        pass
    data = read_index(path)
    data["models"], data["prepared"] = _prepared(data["models"]), True
    try:
        with replacing(copy, root=zoo_home()) as tmp:
            tmp.write_bytes(marshal.dumps(data))
    except OSError:
        pass  # a read-only ZOO_HOME only costs speed
    return data


def _prepared(rows: list[dict]) -> list[dict]:
    """Rows with tuples where the records hold tuples, and equal tuples and strings shared (marshal then
    stores each once, and loading makes each once)."""
    shared: dict[Any, Any] = {}

    def one(value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if isinstance(value, (str, tuple)):
            return shared.setdefault(value, value)
        return value

    prepared = []
    for row in rows:
        model = {k: one(v) for k, v in row.items() if k != "weights"}
        if "weights" in row:
            model["weights"] = [{k: one(v) for k, v in w.items()} for w in row["weights"]]
        prepared.append(model)
    return prepared


def entries_from_rows(rows: list[dict], plugin: str) -> list[ModelEntry]:
    """The records `record_row` wrote, rebuilt field by field (a tenth of the time their __init__ takes:
    the values were computed and checked by it when the index was written)."""
    return [_entry(row, plugin) for row in rows]


def _defaults(record: type) -> dict[str, Any]:
    """Every field's default (MISSING for the required ones, which every row has)."""
    values = {}
    for field in fields(record):
        factory = field.default_factory
        values[field.name] = field.default if field.default is not MISSING or factory is MISSING else factory()
    return values


_MODEL_DEFAULTS = _defaults(ModelEntry)
_WEIGHT_DEFAULTS = _defaults(WeightSet)
_MAPPINGS = frozenset(
    name for name, value in {**_MODEL_DEFAULTS, **_WEIGHT_DEFAULTS}.items() if isinstance(value, Mapping)
)


def _built(record: type, defaults: dict[str, Any], row: dict[str, Any]) -> Any:
    obj = object.__new__(record)
    values = obj.__dict__
    values.update(defaults)  # a required field left MISSING here is in every row
    for name, value in row.items():
        if name in _MAPPINGS:
            value = MappingProxyType(value)
        elif type(value) is list:  # a row from JSON; load_index's are tuples already
            value = tuple(value)
        values[name] = value
    return obj


def _entry(row: dict, plugin: str) -> ModelEntry:
    weights = row.get("weights")
    fields_ = {k: v for k, v in row.items() if k != "weights"} if weights else row
    entry = _built(ModelEntry, _MODEL_DEFAULTS, fields_)
    entry.__dict__["plugin"] = plugin
    if weights:
        entry.__dict__["weights"] = tuple(_built(WeightSet, _WEIGHT_DEFAULTS, w) for w in weights)
    return entry


def installed_version(distribution: str) -> str | None:
    """The version of an installed distribution, from its `.dist-info` directory name (no import, ~1 ms).

    Looks where importlib.metadata looks (sys.path, first found wins), without the local version label;
    None when it is not installed.
    """
    prefix = distribution.lower().replace("-", "_") + "-"
    for entry in sys.path:
        try:
            names = os.listdir(os.path.abspath(entry or os.curdir))
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info") and name.lower().startswith(prefix):
                return name[len(prefix) : -len(".dist-info")].split("+")[0]  # 0.29.1+cpu is 0.29.1
    return None
