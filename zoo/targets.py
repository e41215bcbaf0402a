"""Turn a MODEL argument into a module: a registered architecture, a registry model, or a user's class.

`zoo adapt`, `zoo profile` and `zoo export` all accept the same forms:
`ResNetBackbone` (an architecture), `resnet50`, `timm:resnet50.a1_in1k` (registry models),
`path/to/my_models.py:MyNet` or `package.module:MyNet` (a user's class or factory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownModelError, UserInputError
from zoo.registry import catalogues
from zoo.registry.records import Architecture, Selection
from zoo.registry.references import import_reference

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Target:
    """A built model and where it came from."""

    spec: str
    model: nn.Module
    kind: str  # "architecture", "registry", "class"
    selection: Selection | None = None
    architecture: Architecture | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # what was loaded: a tag, a file, or None for random weights


def is_reference(spec: str) -> bool:
    """`file.py:Name` or `package.module:Name` (a registry `family:name` has no dot before the colon)."""
    module, colon, _ = spec.rpartition(":")
    return bool(colon) and (module.endswith(".py") or "." in module or "/" in module)


def build_target(spec: str, kwargs: dict[str, Any] | None = None, *, meta_device: bool = False) -> Target:
    """Build `spec` with `kwargs` and random weights (on the meta device when `meta_device`)."""
    kwargs = dict(kwargs or {})
    context = _meta_context() if meta_device else _null_context()
    if is_reference(spec):
        factory = import_reference(spec)
        if not callable(factory):
            raise UserInputError(f"{spec!r} is not a class or function that builds a model")
        with context:
            model = factory(**kwargs)
        return Target(spec, _check_module(model, spec), "class", kwargs=kwargs)
    architecture = catalogues.architectures().get(spec)
    if architecture is not None:
        with context:
            model = architecture.builder(**kwargs)
        return Target(spec, _check_module(model, spec), "architecture", architecture=architecture, kwargs=kwargs)
    try:
        selection = catalogues.models().resolve(spec)
    except UnknownModelError as exc:
        names = catalogues.architectures().names()
        hint = f"; architectures: {', '.join(names)}" if names else ""
        raise UnknownModelError(f"{exc}{hint}") from None
    from zoo.api import create_model

    with context:
        model = create_model(spec, **kwargs)
    return Target(spec, model, "registry", selection=selection, kwargs=kwargs)


def parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """`--arg key=value` pairs, values read as Python literals when they parse (`depth=50`, `out_indices=(1,2)`)."""
    import ast

    result: dict[str, Any] = {}
    for pair in pairs or ():
        key, eq, value = pair.partition("=")
        if not eq or not key.strip().isidentifier():
            raise UserInputError(f"--arg {pair!r} must be key=value with a Python identifier as key")
        try:
            result[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            result[key.strip()] = value
    return result


def _check_module(model: Any, spec: str) -> nn.Module:
    from torch import nn

    if not isinstance(model, nn.Module):
        raise UserInputError(f"{spec!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _meta_context():
    import torch

    return torch.device("meta")


def _null_context():
    import contextlib

    return contextlib.nullcontext()
