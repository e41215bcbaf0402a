"""How long each model took to convert last time, so that the next batch dispatches the longest first.

Workers take models in the order given; when the slowest model comes last, one worker converts it while the
others idle (benchmarks.convert's six models on 2 workers: 0.66x the plain loop on a first run, 0.55x again
longest first, medians of 3 rounds).
`$ZOO_HOME/convert-durations.json` keeps each model's latest worker seconds, per device. A model it does not
know keeps its place, ahead of the known ones. The file is a hint: it is read as untrusted (anything but a
name mapped to a finite, non-negative number is ignored), and a file that cannot be read or written changes
only the order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.converting.planning import ConvertTask
from zoo.files import write_text_atomic, zoo_home

FILE_NAME = "convert-durations.json"
VERSION = 1
MAX_ENTRIES = 20_000  # the newest kept: timm and torchvision together list under 2,000 models
MAX_BYTES = 8 << 20


def durations_path() -> Path:
    return zoo_home() / FILE_NAME


def key(task: ConvertTask) -> str:
    """What a duration is recorded under: the device and the model (a CUDA export is not a CPU one)."""
    return f"{task.options.device} {task.name}"


def load(path: Path | None = None) -> dict[str, float]:
    """The recorded seconds by `key`; {} when the file is missing, unreadable or not zoo's format."""
    path = path or durations_path()
    try:
        if path.stat().st_size > MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    seconds = data.get("seconds") if isinstance(data, dict) and data.get("version") == VERSION else None
    if not isinstance(seconds, dict):
        return {}
    return {name: float(value) for name, value in seconds.items() if _is_duration(value)}


def longest_first(tasks: Sequence[ConvertTask], known: Mapping[str, float]) -> list[ConvertTask]:
    """`tasks` with the unknown ones first, in their order, then the known ones by decreasing seconds."""
    unknown = [task for task in tasks if key(task) not in known]
    timed = [task for task in tasks if key(task) in known]
    return unknown + sorted(timed, key=lambda task: -known[key(task)])  # stable: ties keep their order


def record(rows: Iterable[Mapping[str, Any]], tasks: Sequence[ConvertTask], path: Path | None = None) -> None:
    """Merge each row's `wall_seconds` into the file, under its task's key (rows of other names are ignored).

    The file is read again here, not reused from the start of the batch: a batch that ended meanwhile keeps
    its entries.
    """
    path = path or durations_path()
    by_name = {task.name: task for task in tasks}
    fresh = {
        key(by_name[row["name"]]): round(float(row["wall_seconds"]), 3)
        for row in rows
        if row.get("name") in by_name and _is_duration(row.get("wall_seconds")) and row["wall_seconds"] > 0
    }  # 0 s: its worker did not start, which says nothing of the model
    if not fresh:
        return
    seconds = {name: value for name, value in load(path).items() if name not in fresh} | fresh  # newest last
    seconds = dict(list(seconds.items())[-MAX_ENTRIES:])
    try:
        write_text_atomic(path, json.dumps({"version": VERSION, "seconds": seconds}, indent=0), root=path.parent)
    except OSError:
        pass  # a read-only ZOO_HOME: the next batch keeps the order it is given


def _is_duration(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
