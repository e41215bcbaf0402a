"""The batch manifest: one JSON line per model, appended as each finishes; the latest line per model wins.

Appends are whole lines written by one `os.write` on an O_APPEND descriptor under a file lock, then
fsynced, so a killed run leaves at most a truncated last line, which reading skips.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.jsonl"
STATUSES = ("ok", "failed", "verify-failed", "timeout", "crashed", "memory", "skipped")
FAILURES = ("failed", "verify-failed", "timeout", "crashed", "memory")


def manifest_path(directory: str | Path) -> Path:
    return Path(directory) / MANIFEST_NAME


def fingerprint(inputs: Mapping[str, Any]) -> str:
    """A short stable hash of a model's inputs (weights identity, zoo version, export options)."""
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def append(directory: str | Path, row: Mapping[str, Any]) -> None:
    """Append `row` as one JSON line to DIR/manifest.jsonl, atomically with respect to other appenders."""
    from filelock import FileLock

    path = manifest_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(dict(row), sort_keys=True, default=str) + "\n").encode()
    with FileLock(str(path) + ".lock"):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _repair_tail(fd, path)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _repair_tail(fd: int, path: Path) -> None:
    """A run killed mid-write can leave a last line without its newline: end it, so the next row is whole."""
    size = path.stat().st_size
    if size:
        with open(path, "rb") as stream:
            stream.seek(size - 1)
            if stream.read(1) != b"\n":
                os.write(fd, b"\n")


def read_rows(directory: str | Path) -> list[dict[str, Any]]:
    """Every well-formed row, in the order written (truncated or corrupt lines are skipped)."""
    path = manifest_path(directory)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "name" in row:
            rows.append(row)
    return rows


def latest(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest row per model name."""
    result: dict[str, dict[str, Any]] = {}
    for row in rows:
        result[row["name"]] = dict(row)
    return result


def read_latest(directory: str | Path) -> dict[str, dict[str, Any]]:
    return latest(read_rows(directory))


def is_failure(row: Mapping[str, Any]) -> bool:
    return row.get("status") in FAILURES
