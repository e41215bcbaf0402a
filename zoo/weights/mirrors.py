"""Where else a weights file can be fetched from: `--mirror`, ZOO_MIRROR and `$ZOO_HOME/config.toml`.

A mirror base URL serves files under their cache keys (`<base>/resnet18-f37072fd.pth`), the layout
`zoo mirror sync` writes. The config file may also map URL prefixes to replacements:

    # $ZOO_HOME/config.toml (or the file named by ZOO_CONFIG)
    mirrors = ["http://mirror.internal/zoo"]          # tried in order before the origin
    [mirror_map]
    "https://download.pytorch.org/models/" = "http://mirror.internal/torchvision/"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zoo.errors import UserInputError
from zoo.files import zoo_home


def config_path() -> Path:
    return Path(os.environ.get("ZOO_CONFIG") or zoo_home() / "config.toml")


def read_config() -> dict[str, Any]:
    """The parsed config file ({} when there is none)."""
    path = config_path()
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
        raise UserInputError(f"{path}: cannot read the zoo config file: {exc}") from None


def env_mirrors() -> list[str]:
    """ZOO_MIRROR: one or more base URLs separated by spaces or commas."""
    return os.environ.get("ZOO_MIRROR", "").replace(",", " ").split()


def candidate_urls(url: str, key: str, mirrors: Iterable[str] = (), entry_mirrors: Iterable[str] = ()) -> list[str]:
    """URLs to try in order: given mirrors, ZOO_MIRROR, config mirrors and prefix map, the entry's own
    mirrors, then the origin."""
    config = read_config()
    configured, mirror_map = config.get("mirrors", []), config.get("mirror_map", {})
    if not isinstance(configured, list) or not all(isinstance(m, str) for m in configured):
        raise UserInputError(f"{config_path()}: 'mirrors' must be a list of base URLs, got {configured!r}")
    if not isinstance(mirror_map, dict) or not all(isinstance(r, str) for r in mirror_map.values()):
        raise UserInputError(f"{config_path()}: [mirror_map] must map URL prefixes to URL strings, got {mirror_map!r}")
    bases = [*mirrors, *env_mirrors(), *configured]
    urls = [f"{base.rstrip('/')}/{key}" for base in bases]
    for prefix, replacement in mirror_map.items():
        if url.startswith(prefix):
            urls.append(replacement + url[len(prefix) :])
    urls.extend(entry_mirrors)
    urls.append(url)
    return list(dict.fromkeys(urls))


def offline_requested(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get("ZOO_OFFLINE", "") not in ("", "0")
