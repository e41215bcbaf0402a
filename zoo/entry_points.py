"""The installed distributions' entry points in one group, cached between runs.

Importing importlib.metadata and reading every installed distribution's metadata costs 20-40 ms, a tenth
of the 0.3 s that `zoo list` may take, while the answer changes only when some distribution's
`entry_points.txt` appears, changes or goes away (pip install, upgrade, uninstall, `pip install -e`).
Listing those files with their sizes and mtimes takes ~1 ms: that list is the cache's key, so the cache
is read again the moment anything that declares entry points changes. One cache file per sys.path.
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
    paths = "\n".join([sys.executable, *sys.path])  # `zoo` and `python -m zoo` see different sys.paths
    cache = zoo_home() / "entry-points" / f"{group}-{zlib.crc32(paths.encode()):08x}.json"
    key = _entry_point_files()
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


def _entry_point_files() -> list[list]:
    """[path, mtime_ns, size] of the `entry_points.txt` of every distribution on sys.path."""
    files = []
    for entry in sys.path:
        try:
            listing = os.scandir(os.path.abspath(entry or os.curdir))
        except OSError:  # a zip file or a missing directory
            continue
        with listing:
            for item in listing:
                if item.name.endswith((".dist-info", ".egg-info")):
                    path = os.path.join(item.path, "entry_points.txt")
                    try:
                        stat = os.stat(path)
                    except OSError:
                        continue
                    files.append([path, stat.st_mtime_ns, stat.st_size])
    return files
