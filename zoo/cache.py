"""Where zoo keeps downloaded weights: ZOO_HOME, or the platform's cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from zoo.records import WeightSet


def zoo_home() -> Path:
    """ZOO_HOME if set, else the platform cache directory (`~/.cache/zoo` on Linux)."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("zoo", appauthor=False))


def weights_dir() -> Path:
    return zoo_home() / "weights"


def cached_path(weights: WeightSet) -> Path:
    """Where a weight set's verified file lives in the cache (whether or not it is there yet)."""
    return weights_dir() / weights.file_name


def is_cached(weights: WeightSet) -> bool:
    return cached_path(weights).is_file()
