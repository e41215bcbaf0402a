"""Turn a MODEL argument into a module: a registered architecture, a registry model, or a user's class.

`zoo adapt`, `zoo profile` and `zoo export` all accept the same forms:
`ResNetBackbone` (an architecture), `resnet50`, `timm:resnet50.a1_in1k` (registry models),
`path/to/my_models.py:MyNet` or `package.module:MyNet` (a user's class or factory).
A `family:name` the registry does not list is built by its family's builder when the library has it
(`timm:mobilenetv2_100` with timm's `create_model`, `torchvision:NAME` with torchvision's builder):
see `resolve`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zoo.errors import UnknownModelError, UserInputError
from zoo.registry import catalogues
from zoo.registry.records import Architecture, ModelEntry, Selection
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
    weight_set: bool = True  # built as its weight set needs (False: the bare architecture)

    def real_buffers(self) -> dict[str, Any]:
        """Every buffer of this target as a real build computes it (parameters stay on the meta device).

        Buffers some builders derive from a parameter's device (timm's window attention mask) need a
        fully real build; that one is made only when such buffers exist.
        """
        again = {"meta_device": True, "weight_set": self.weight_set, "real_buffers": True}
        buffers = dict(build_target(self.spec, self.kwargs, **again).model.named_buffers())
        if any(b.is_meta for b in buffers.values()):
            real = build_target(self.spec, self.kwargs, weight_set=self.weight_set).model
            buffers = {k: (dict(real.named_buffers())[k] if b.is_meta else b) for k, b in buffers.items()}
        return buffers


def on_meta(model: nn.Module) -> bool:
    """Whether any parameter or buffer of `model` is on the meta device (has no values yet)."""
    return any(t.is_meta for t in model.parameters()) or any(t.is_meta for t in model.buffers())


def is_reference(spec: str) -> bool:
    """`file.py:Name` or `package.module:Name` (a registry `family:name` has no dot before the colon)."""
    module, colon, _ = spec.rpartition(":")
    return bool(colon) and (module.endswith(".py") or "." in module or "/" in module)


def build_target(
    spec: str,
    kwargs: dict[str, Any] | None = None,
    *,
    meta_device: bool = False,
    weight_set: bool = True,
    real_buffers: bool = False,
) -> Target:
    """Build `spec` with `kwargs` and random weights (on the meta device when `meta_device`).

    A registry model is built as its weight set needs (`timm:vit_large_patch16_224` is its default tag's
    21k-class model); `weight_set=False` builds the bare architecture. `real_buffers`: on the meta device,
    only parameters go there; buffers are built for real (non-persistent ones need no rebuild later).
    """
    kwargs = dict(kwargs or {})
    if meta_device and real_buffers:
        meta_device = "parameters"
    if is_reference(spec):
        factory = import_reference(spec)
        if not callable(factory):
            raise UserInputError(f"{spec!r} is not a class or function that builds a model")
        model = _built(lambda: factory(**kwargs), meta_device)
        return Target(spec, _check_module(model, spec), "class", kwargs=kwargs)
    architecture = catalogues.architectures().get(spec)
    if architecture is not None:
        model = _built(lambda: architecture.builder(**kwargs), meta_device)
        return Target(spec, _check_module(model, spec), "architecture", architecture=architecture, kwargs=kwargs)
    try:
        selection = resolve(spec)
    except UnknownModelError as exc:
        names = catalogues.architectures().names()
        hint = f"; architectures: {', '.join(names)}" if names else ""
        raise UnknownModelError(f"{exc}{hint}") from None
    if not weight_set:
        selection = Selection(selection.entry, None)
    model = _built(lambda: build_entry(selection, kwargs), meta_device)
    return Target(spec, model, "registry", selection=selection, kwargs=kwargs, weight_set=weight_set)


def resolve(spec: str) -> Selection:
    """The registry's selection for `spec`; for `family:name` it does not list, the family's builder's entry.

    No library is named here: an unlisted entry copies how a listed entry of the same family reaches its
    builder (a builder argument holding the model's name, as timm's `create_model(model_name=...)`, or a
    builder reference ending in it, as `torchvision.models:resnet50`), with the new name put in its place.
    """
    try:
        return catalogues.models().resolve(spec)
    except UnknownModelError:
        family, colon, name = spec.rpartition(":")
        entry = family_entry(family, name.partition(".")[0]) if colon and family else None
        if entry is None:
            raise
        return Selection(entry, None)


def family_entry(family: str, name: str) -> ModelEntry | None:
    """An entry for `name` built the way `family`'s listed entries are, or None when the library lacks it."""
    if not name.isidentifier() or catalogues.builders().get(family) is None:
        return None
    for entry in catalogues.models():
        if entry.family != family:
            continue
        kwargs = {k: (name if v == entry.name else v) for k, v in entry.builder_kwargs.items()}
        module, _, attr = entry.builder.rpartition(":")
        if kwargs != dict(entry.builder_kwargs):
            builder = entry.builder
        elif attr == entry.name:
            builder = f"{module}:{name}"
        else:
            continue
        candidate = dataclasses.replace(
            entry,
            name=name,
            builder=builder,
            builder_kwargs=kwargs,
            weights=(),
            aliases=(),
            remap=None,
            description=f"not in the registry: built by the {family} builder",
        )
        return candidate if _buildable(candidate) else None
    return None


def _buildable(entry: ModelEntry) -> bool:
    """Whether the library behind `entry` can build it: its builder imports, and a meta-device build starts."""
    try:
        build_entry(Selection(entry, None), {}, meta_device=True)
    except (UserInputError, UnknownModelError, ImportError, AttributeError, KeyError, ValueError):
        return False
    except RuntimeError as exc:  # timm: "Unknown model (NAME)"
        return "unknown model" not in str(exc).lower()
    return True


def build_entry(selection: Selection, kwargs: dict[str, Any], meta_device: bool = False) -> nn.Module:
    """Build a registry (or family) entry through its family's builder, with the weight set's builder kwargs."""
    entry = selection.entry
    build = catalogues.builders().get(entry.family)
    if build is None:
        raise UnknownModelError(
            f"no plugin provides a builder for family {entry.family!r} (needed by {entry.qualified_name}); "
            "install the plugin for it (`zoo plugins` lists what is loaded)"
        )
    weights_kwargs = selection.weights.builder_kwargs if selection.weights is not None else {}
    return _built(lambda: build(entry, **{**weights_kwargs, **kwargs}), meta_device)


def _built(make, meta_device: bool | str):
    """`make()`, on the meta device when asked: parameters never get storage (nor random values).

    Some builders compute with tensors while building (torchvision's regnet derives its widths with
    `torch.arange(...).tolist()`), which the meta device cannot: then only parameters are put on the meta
    device as they are registered, and buffers are built for real, as the builder computed them.
    """
    if not meta_device:
        return make()
    if meta_device == "parameters":
        with _parameters_on_meta():
            return make()
    try:
        with _meta_context():
            return make()
    except NotImplementedError as exc:
        if "meta" not in str(exc):
            raise
    with _parameters_on_meta():
        return make()


def _parameters_on_meta():
    """While active, every parameter a module registers is moved to the meta device (accelerate's trick)."""
    import contextlib

    from torch import nn

    @contextlib.contextmanager
    def context():
        register = nn.Module.register_parameter

        def register_on_meta(module, name, param):
            if param is not None and not param.is_meta:
                param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
            register(module, name, param)

        nn.Module.register_parameter = register_on_meta
        try:
            yield
        finally:
            nn.Module.register_parameter = register

    return context()


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
