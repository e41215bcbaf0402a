"""The built-in catalogues: each family's shipped index, or one built from the installed library.

The shipped index (`data/<family>.json`, written by scripts/generate_registry.py) is the fast path. When
the installed library is another version than the one it was generated from, the catalogue is built from
the installed library once, with a line on stderr saying so, and cached under ZOO_HOME; later runs read
the cache. A build that fails leaves the shipped catalogue in use, and says why.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from zoo import __version__
from zoo.errors import ZooError
from zoo.files import zoo_home
from zoo.registry.index import entries_from_rows, installed_version, load_index, normalised_rows, write_index
from zoo.registry.records import ModelEntry

DATA = Path(__file__).resolve().parent / "data"
GENERATOR = "scripts/generate_registry.py"


def shipped_index(family: str) -> Path:
    return DATA / f"{family}.json"


def header(family: str, library: str, version: str) -> dict:
    return {"family": family, "library": library, "version": version, "generator": GENERATOR}


def family_entries(
    family: str, library: str, build_rows: Callable[[list[dict]], list[dict]], shipped: Path | None = None
) -> list[ModelEntry]:
    """The entries of `family`: from the shipped index, or built from the installed `library` when it differs.

    `build_rows(shipped_rows)` builds the rows from the installed library (it may reuse what the shipped
    rows know, e.g. parameter counts of the models both versions have).
    """
    shipped = shipped or shipped_index(family)
    data = load_index(shipped)
    installed = installed_version(library)
    if installed is None or installed == data["version"]:
        return entries_from_rows(data["models"], family)
    cache = rebuilt_index_path(family, installed, data["version"])
    try:
        return entries_from_rows(load_index(cache)["models"], family)
    except (OSError, ZooError):
        pass
    rows = _build(family, library, installed, data, build_rows, cache)
    return entries_from_rows(rows, family)


def rebuilt_index_path(family: str, installed: str, shipped_version: str) -> Path:
    """Where the catalogue built from an installed library version is cached (per zoo and shipped version)."""
    return zoo_home() / "catalogue" / f"{family}-{installed}-from-{shipped_version}-zoo{__version__}.json"


def _build(family: str, library: str, installed: str, data: dict, build_rows, cache: Path) -> list[dict]:
    _say(
        f"{library} {installed} is installed, the shipped {family} catalogue is for {library} {data['version']}: "
        f"building the {family} catalogue from the installed {library} (once; later runs read {cache})"
    )
    started = time.monotonic()
    try:
        rows = normalised_rows(build_rows(data["models"]), f"the catalogue built from {library} {installed}")
    except Exception as exc:  # noqa: BLE001 - a library zoo does not know yet must not break zoo
        _say(
            f"could not build the {family} catalogue from {library} {installed} ({type(exc).__name__}: {exc}); "
            f"using the shipped one for {library} {data['version']}"
        )
        return data["models"]
    try:
        write_index(cache, header(family, library, installed), rows)
    except OSError as exc:  # built but not cached: used now, built again next time
        _say(f"could not cache the {family} catalogue in {cache} ({exc}); it is built again next time")
    weights = sum(len(row.get("weights", ())) for row in rows)
    _say(f"{family} catalogue: {len(rows)} models, {weights} weight sets in {time.monotonic() - started:.0f} s")
    return rows


def known_params(rows: list[dict]) -> dict[str, int]:
    """Parameter counts the rows know, by model name (`arch` and `arch.tag`)."""
    known = {}
    for row in rows:
        if row.get("params"):
            known[row["name"]] = row["params"]
        for weights in row.get("weights", ()):
            if weights.get("params"):
                known[f"{row['name']}.{weights['tag']}"] = weights["params"]
    return known


def _say(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)
