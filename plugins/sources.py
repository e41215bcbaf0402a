"""Built-in plugin: weight sources for `http`, `https` and `file` URLs (Range resume for http)."""

from __future__ import annotations

from zoo import hookimpl
from zoo.weights.sources import FileSource, HttpSource


@hookimpl
def register_weight_sources(register) -> None:
    http = HttpSource()
    register("http", http)
    register("https", http)
    register("file", FileSource())
