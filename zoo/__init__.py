"""zoo: a plugin-based model-zoo registry and converter for PyTorch vision models.

The names below import nothing heavy: torch is imported only by the functions that build or load models.
"""

from __future__ import annotations

from zoo.api import create_model, get_entry, list_models, resolve
from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.records import Architecture, ModelEntry, Remap, Selection, WeightSet
from zoo.references import import_reference
from zoo.registry_file import read_registry_file

__version__ = "0.1.0"

_LAZY = {
    "fetch": "zoo.fetching",
    "fetch_url": "zoo.fetching",
    "FetchResult": "zoo.fetching",
    "load_weights": "zoo.loading",
    "load_checkpoint": "zoo.loading",
    "Checkpoint": "zoo.loading",
    "OpenedSource": "zoo.sources",
    "adapt": "zoo.adapt",
    "profile": "zoo.profiling",
    "export": "zoo.exporting",
    "ExportReport": "zoo.exporting",
    "Profile": "zoo.profiling",
}


def __getattr__(name: str):
    """Fetching and loading names, imported on first use (they pull in http.client, filelock, torch)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Architecture",
    "adapt",
    "Checkpoint",
    "FetchResult",
    "OpenedSource",
    "ModelEntry",
    "Profile",
    "Remap",
    "Selection",
    "WeightSet",
    "ZooError",
    "__version__",
    "create_model",
    "fetch",
    "fetch_url",
    "get_entry",
    "hookimpl",
    "import_reference",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "profile",
    "read_registry_file",
    "resolve",
]
