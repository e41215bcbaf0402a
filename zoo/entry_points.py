"""The installed distributions' entry points in one group, cached between runs.

Importing importlib.metadata and scanning every installed distribution costs 20-40 ms, a tenth of the
0.3 s that `zoo list` may take, while the answer changes only when a distribution is installed, upgraded
or removed. pip does each of those by adding, renaming or removing a `*.dist-info` directory, which
changes the modification time of the directory on sys.path that holds it. So there is one cache file per
interpreter and sys.path, holding the mtime of every sys.path entry, and it is rebuilt when any of them changes.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from dataclasses import astuple, dataclass

from zoo.files import write_text_atomic, zoo_home


@dataclass(frozen=True)
class EntryPoint:
    name: str
    value: str  # "module" or "module:attribute"
    version: str | None  # of the distribution that declares it


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points in `group`, as importlib.metadata reports them (from the cache when it is current)."""
    key = _sys_path_key()
    paths = "\n".join(str(item[0]) for item in key)  # `zoo` and `python -m zoo` see different sys.paths
    cache = zoo_home() / "entry-points" / f"{group}-{zlib.crc32(paths.encode()):08x}.json"
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data["key"] == key:
            return [EntryPoint(*item) for item in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _scan(group)
    try:
        write_text_atomic(cache, json.dumps({"key": key, "entry_points": [astuple(ep) for ep in found]}))
    except OSError:
        pass  # a read-only cache only costs speed
    return found


def _scan(group: str) -> list[EntryPoint]:
    from importlib.metadata import entry_points as installed_entry_points

    return [
        EntryPoint(ep.name, ep.value, ep.dist.version if ep.dist else None)
        for ep in installed_entry_points(group=group)
    ]


def _sys_path_key() -> list:
    key: list = [[sys.executable, None]]
    for entry in sys.path:
        path = os.path.abspath(entry or os.curdir)
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = None
        key.append([path, mtime])
    return key
