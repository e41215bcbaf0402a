"""zoo's own files: where they live (ZOO_HOME), and writing them so that no reader ever sees half of one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def zoo_home() -> Path:
    """ZOO_HOME if set, else the platform cache directory (`~/.cache/zoo` on Linux)."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("zoo", appauthor=False))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8, newlines as given) to a temp file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
