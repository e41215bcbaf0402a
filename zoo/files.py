"""zoo's own files: where they live (ZOO_HOME), and writing them so that no reader ever sees half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def zoo_home() -> Path:
    """ZOO_HOME if set, else the platform cache directory (`~/.cache/zoo` on Linux)."""
    home = os.environ.get("ZOO_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("zoo", appauthor=False))


@contextlib.contextmanager
def replacing(path: str | Path, suffix: str = ".tmp", root: str | Path | None = None) -> Iterator[Path]:
    """A temporary path beside `path` to write: renamed onto `path` if the block succeeds, removed if not.

    With `root` (the cache, a mirror or output directory), `path` must resolve inside it (zoo.paths.inside).
    """
    path = Path(path)
    if root is not None:
        from zoo.paths import inside

        inside(root, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after the rename


def write_text_atomic(path: str | Path, text: str, root: str | Path | None = None) -> Path:
    """Write `text` (UTF-8, newlines as given) to a temp file beside `path`, then rename it into place."""
    with replacing(path, root=root) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)
