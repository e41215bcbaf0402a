"""zoo: a plugin-based model-zoo registry and converter for PyTorch vision models.

`import zoo` imports only the records, errors and the hook marker; every other name is imported on first
use, so the CLI starts fast and torch is imported only by the functions that build or load models.
"""

from __future__ import annotations

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.registry.records import Architecture, ModelEntry, Remap, Selection, WeightSet

__version__ = "0.1.0"

_LAZY = {
    "create_model": "zoo.api",
    "get_entry": "zoo.api",
    "list_models": "zoo.api",
    "resolve": "zoo.api",
    "find_file": "zoo.api",
    "import_reference": "zoo.registry.references",
    "read_registry_file": "zoo.registry.registry_file",
    "safe_component": "zoo.paths",
    "fetch": "zoo.weights.fetching",
    "fetch_url": "zoo.weights.fetching",
    "FetchResult": "zoo.weights.fetching",
    "load_weights": "zoo.weights.loading",
    "load_checkpoint": "zoo.weights.loading",
    "Checkpoint": "zoo.weights.loading",
    "OpenedSource": "zoo.weights.sources",
    "FetchError": "zoo.weights.sources",
    "adapt": "zoo.adapt",
    "profile": "zoo.profiling",
    "export": "zoo.exporting",
    "ExportReport": "zoo.exporting",
    "Profile": "zoo.profiling",
}


def __getattr__(name: str):
    """The names in _LAZY, imported from their module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "Architecture",
    "adapt",
    "Checkpoint",
    "FetchError",
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
    "find_file",
    "get_entry",
    "hookimpl",
    "import_reference",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "profile",
    "read_registry_file",
    "resolve",
    "safe_component",
]
