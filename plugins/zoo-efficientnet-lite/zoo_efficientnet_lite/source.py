"""A weight source for `pkg:PACKAGE/PATH` URLs: a data file inside an installed Python package."""

from __future__ import annotations

import os
from importlib import resources
from urllib.parse import unquote, urlsplit

from zoo import FetchError, OpenedSource


def package_file(url: str):
    """The `importlib.resources` traversable `pkg:PACKAGE/PATH` names (the package is imported)."""
    package, _, path = unquote(urlsplit(url).path).partition("/")
    if not package or not path:
        raise FetchError(f"{url}: write pkg:PACKAGE/PATH/TO/FILE (an importable package and a file inside it)")
    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        dist = package.replace("_", "-")
        raise FetchError(f"{url}: package {package!r} is not installed; `pip install {dist}`") from None
    return root.joinpath(*path.split("/"))


class PackageSource:
    """Opens `pkg:` URLs; zoo hashes, verifies and caches what it reads, as for any download."""

    local = True  # the file is inside an installed package: usable under --offline

    def open(self, url: str, offset: int = 0) -> OpenedSource:
        resource = package_file(url)
        try:
            stream = resource.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise FetchError(f"{url}: the installed package has no such file") from None
        try:
            size = os.fstat(stream.fileno()).st_size
        except (AttributeError, OSError):  # inside a zip: no file descriptor
            size = None
        stream.seek(offset)
        return OpenedSource(stream, size, resumed=True)
