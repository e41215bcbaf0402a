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

__all__ = [
    "Architecture",
    "ModelEntry",
    "Remap",
    "Selection",
    "WeightSet",
    "ZooError",
    "__version__",
    "create_model",
    "get_entry",
    "hookimpl",
    "import_reference",
    "list_models",
    "read_registry_file",
    "resolve",
]
