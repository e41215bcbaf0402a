"""The dynamo exporter's torchlib registry, built once per process instead of once per export.

`torch.onnx.export(dynamo=True)` rebuilds `ONNXRegistry.from_torchlib()` on every call: 0.3-0.6 s on this
project's CPU, a fifth of a warm worker's resnet18 export. `reused_registry()` serves each call a copy of
one registry per opset (a copy, so a call that registers custom ops cannot leak them into the next). When
torch's private layout differs from the one known here, exports run unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
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


def _key(signature: inspect.Signature, klass: type, args: tuple, kwargs: dict) -> tuple:
    """One key per registry: `from_torchlib()`, `(20)` and `(opset_version=20)` bind to the same arguments."""
    call = signature.bind(klass, *args, **kwargs)
    call.apply_defaults()
    key = (klass, *call.args[1:], *sorted(call.kwargs.items()))
    hash(key)  # an unhashable argument raises TypeError here, where the caller falls back to torch's build
    return key


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
    signature = inspect.signature(build)

    def cached(klass, *args, **kwargs):
        try:
            key = _key(signature, klass, args, kwargs)
        except TypeError:  # a call torch does not take (its own error follows), or unhashable arguments
            return build(klass, *args, **kwargs)
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


def warm(opset: int | None = None) -> None:
    """Build now the registry a dynamo export at `opset` (torch's default when None) will ask for.

    torch asks for `max(opset, TORCHLIB_OPSET)`; a convert worker does this once, before its first model.
    """
    module = _registration()
    if module is None:
        return
    from torch.onnx import _constants as onnx_constants
    from torch.onnx._internal.exporter import _constants

    requested = opset or getattr(onnx_constants, "ONNX_DEFAULT_OPSET", 0)
    floor = getattr(_constants, "TORCHLIB_OPSET", 0)
    with reused_registry():
        module.ONNXRegistry.from_torchlib(opset_version=max(requested, floor))
