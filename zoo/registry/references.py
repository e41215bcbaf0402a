"""Import `module:attribute` and `path/to/file.py:Attribute` references."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from zoo.errors import UserInputError


def import_reference(reference: str) -> Any:
    """The object `reference` names: `package.module:Name`, `package.module.Name` or `file.py:Name`."""
    module_name, colon, attribute = reference.rpartition(":")
    if not colon:
        module_name, _, attribute = reference.rpartition(".")
    if not module_name or not attribute:
        raise UserInputError(f"{reference!r} is not a reference: write module:Name or path/to/file.py:Name")
    if module_name.endswith(".py"):
        module = _import_file(Path(module_name))
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UserInputError(f"cannot import {module_name!r} for {reference!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UserInputError(f"{module_name!r} has no attribute {attribute!r} (from {reference!r})") from None
    return target


def _import_file(path: Path):
    if not path.is_file():
        raise UserInputError(f"no such Python file: {path}")
    name = f"zoo_user_{path.stem}_{abs(hash(str(path.resolve())))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module
