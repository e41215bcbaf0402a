"""The dynamo exporter's torchlib registry, built once per process instead of once per export.

`torch.onnx.export(dynamo=True)` rebuilds `ONNXRegistry.from_torchlib()` on every call: 0.3-0.6 s on this
project's CPU, a fifth of a warm worker's resnet18 export. `reused_registry()` serves each call a copy of
one registry per opset (a copy, so a call that registers custom ops cannot leak them into the next). When
torch's private layout differs from the one known here, exports run unchanged.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

_built: dict[Any, Any] = {}


def _registration():
    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:
        return None
    registry = getattr(_registration, "ONNXRegistry", None)
    return _registration if registry is not None and hasattr(registry, "from_torchlib") else None


def _copy(registry):
    clone = copy.copy(registry)
    clone.functions = {target: list(entries) for target, entries in registry.functions.items()}
    return clone


@contextlib.contextmanager
def reused_registry() -> Iterator[None]:
    """Within the block, `ONNXRegistry.from_torchlib(opset)` returns a copy of the process's registry."""
    module = _registration()
    if module is None:
        yield
        return
    cls = module.ONNXRegistry
    original = cls.__dict__["from_torchlib"]  # the classmethod object, restored as it was
    build = original.__func__

    def cached(klass, *args, **kwargs):
        key = (klass, args, tuple(sorted(kwargs.items())))
        registry = _built.get(key)
        if registry is None:
            registry = _built[key] = build(klass, *args, **kwargs)
        if not isinstance(getattr(registry, "functions", None), dict):
            return build(klass, *args, **kwargs)  # a layout this module does not know: torch's own behaviour
        return _copy(registry)

    cls.from_torchlib = classmethod(cached)
    try:
        yield
    finally:
        cls.from_torchlib = original


def warm() -> None:
    """Build the default registry now (a convert worker does this once, before its first model)."""
    module = _registration()
    if module is not None:
        with reused_registry():
            module.ONNXRegistry.from_torchlib()
