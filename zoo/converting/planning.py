"""Which models a batch converts: selection by pattern, then resume (skip what is done and unchanged)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zoo.converting import manifest
from zoo.converting.options import ExportOptions
from zoo.errors import UnknownModelError, UserInputError
from zoo.registry import catalogues
from zoo.registry.records import ModelEntry, WeightSet

# Environment a worker needs to see the same registry, plugins, cache and mirrors as the command.
ENV_PREFIXES = ("ZOO_",)
ENV_NAMES = ("TORCH_HOME", "XDG_CACHE_HOME", "PYTHONPATH", "HOME")


@dataclass(frozen=True)
class ConvertTask:
    """One model to convert: everything a worker (local or remote) needs, picklable and JSON-ready."""

    name: str  # family:name
    output: str  # the .onnx path
    options: ExportOptions
    inputs: Mapping[str, Any]  # weights identity, zoo version, export options
    fingerprint: str
    timeout: float | None = None
    max_memory: int | None = None  # bytes of address space
    threads: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    family_task: str = "classification"  # what the report groups by: a registry task, or `quantized`

    @property
    def address_space_capped(self) -> bool:
        """Whether its worker runs under RLIMIT_AS: `max_memory` on the CPU (CUDA caps resident memory only)."""
        return bool(self.max_memory) and self.options.device != "cuda"


@dataclass
class Plan:
    """What to run, and the models left alone (with the manifest row that made them up to date)."""

    tasks: list[ConvertTask]
    up_to_date: list[dict[str, Any]] = field(default_factory=list)
    not_retried: list[str] = field(default_factory=list)  # with --retry-failed: selected but not failed


def select(
    patterns: Iterable[str], exclude: Iterable[str] = (), all_models: bool = False, family: str | None = None
) -> list[ModelEntry]:
    """Registry entries matching any pattern (every entry with `all_models`), no exclude pattern, and `family`."""
    patterns, exclude = list(patterns), list(exclude)
    if not patterns and not all_models:
        raise UserInputError("give model patterns (e.g. 'resnet*' 'timm:efficientnet_*') or --all")
    registry = catalogues.models()
    if family is not None and not registry.select(family=family):
        known = ", ".join(sorted({e.family for e in registry})) or "none"
        raise UnknownModelError(f"no model of family {family!r} (families: {known})")
    if all_models:
        return registry.select([], exclude, family)
    for pattern in patterns:
        if not registry.select([pattern], family=family):
            close = registry.suggest(pattern.rpartition(":")[2].strip("*?[]"))
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            where = f" in family {family!r}" if family else ""
            raise UnknownModelError(f"no model matches {pattern!r}{where}{hint} (`zoo list` shows every model)")
    entries = registry.select(patterns, exclude, family)
    if not entries:
        raise UserInputError(f"every model matching {' '.join(patterns)} is excluded by --exclude")
    return entries


def task_family(entry: ModelEntry) -> str:
    """The report's task family: `quantized` for a model tagged so, else the entry's task."""
    return "quantized" if "quantized" in entry.tags else entry.task


def output_path(directory: Path, entry: ModelEntry) -> Path:
    """DIR/<family>/<name>.onnx (families keep timm's and torchvision's `resnet50` apart), checked to stay in DIR."""
    from zoo.paths import inside, safe_component

    family = safe_component(entry.family, f"family of model {entry.qualified_name!r}")
    name = safe_component(f"{entry.name}.onnx", f"output file name of model {entry.qualified_name!r}")
    return inside(directory, directory / family / name)


def weights_identity(entry: ModelEntry, weights: str | None) -> dict[str, Any]:
    """What identifies the weights a conversion would load, known before fetching anything."""
    if weights is not None and weights.lower() == "none":
        return {"weights": "none"}
    if weights is not None and entry.weight_set(weights) is None:
        path = Path(weights).expanduser()
        if path.is_file():
            from zoo.weights.cache import hash_file

            return {"weights": str(path.resolve()), "sha256": hash_file(path)}
        return {"weights": weights}  # the worker reports the error
    weight_set = entry.weight_set(weights)
    if weight_set is None:
        return {"weights": "none"}
    return _registry_identity(weight_set)


def _registry_identity(weight_set: WeightSet) -> dict[str, Any]:
    return {"weights": weight_set.tag, "url": weight_set.url, "expected_sha256": weight_set.expected_hash}


def cached_sha256(entry: ModelEntry, weights: str | None) -> str | None:
    """The recorded sha256 of the cached file a registry weight set would load (None when not cached)."""
    if weights is not None and weights.lower() == "none":
        return None
    weight_set = entry.weight_set(weights)
    if weight_set is None:
        return None
    from zoo.weights.cache import cache_key, read_record

    record = read_record(cache_key(weight_set.url, weight_set.file_name))
    return record.sha256 if record is not None and record.sha256 else None


def task_inputs(entry: ModelEntry, options: ExportOptions) -> dict[str, Any]:
    from zoo import __version__

    return {
        "weights": weights_identity(entry, options.weights),
        "zoo_version": __version__,
        "export_options": options.to_dict(),
    }


def worker_environment() -> dict[str, str]:
    """The variables that decide registry, plugins, cache and mirrors, as the command sees them."""
    return {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIXES) or key in ENV_NAMES}


def is_done(row: Mapping[str, Any] | None, fingerprint: str, output: Path, weights_sha256: str | None = None) -> bool:
    """An ok row with the same inputs, whose output file is still there with the size it was written at.

    `weights_sha256`, the cached weights' hash when known, must match the row's (a registry weight set with
    no hash in the registry can change behind the same URL).
    """
    if row is None or row.get("status") != "ok" or row.get("fingerprint") != fingerprint:
        return False
    if weights_sha256 and row.get("weights_sha256") and row["weights_sha256"] != weights_sha256:
        return False
    try:
        size = output.stat().st_size
    except OSError:
        return False
    return not row.get("onnx_bytes") or size == row["onnx_bytes"]


def plan(
    entries: list[ModelEntry],
    directory: str | Path,
    options: ExportOptions,
    *,
    resume: bool = True,
    retry_failed: bool = False,
    timeout: float | None = None,
    max_memory: int | None = None,
    threads: int = 1,
) -> Plan:
    """Tasks for `entries`; with `resume`, skip up-to-date models; with `retry_failed`, only the failures."""
    directory = Path(directory).resolve()
    rows = manifest.read_latest(directory)
    environment = worker_environment()
    result = Plan([])
    for entry in entries:
        inputs = task_inputs(entry, options)
        key = manifest.fingerprint(inputs)
        output = output_path(directory, entry)
        row = rows.get(entry.qualified_name)
        if retry_failed and not (row is not None and manifest.is_failure(row)):
            result.not_retried.append(entry.qualified_name)
            continue
        if resume and not retry_failed and is_done(row, key, output, cached_sha256(entry, options.weights)):
            result.up_to_date.append(row)  # type: ignore[arg-type]
            continue
        result.tasks.append(
            ConvertTask(
                entry.qualified_name,
                str(output),
                options,
                inputs,
                key,
                timeout,
                max_memory,
                threads,
                environment,
                task_family(entry),
            )
        )
    return result
