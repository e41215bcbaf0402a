"""What the benchmarks share: a median timer, and the environment a user's process runs in."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable


def wall_seconds(function: Callable[[], object]) -> float:
    """Wall time of one call of `function`."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def median_seconds(function: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls of `function`."""
    return statistics.median(wall_seconds(function) for _ in range(runs))


def user_env() -> dict[str, str]:
    """This environment without PYTHONDONTWRITEBYTECODE: a user's Python caches bytecode (this sandbox's does not)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
