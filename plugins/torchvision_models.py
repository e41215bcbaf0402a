"""Built-in plugin: torchvision's classification models (records from registry.toml) and their builder."""

from __future__ import annotations

from typing import Any

from zoo_plugins import register_family

from zoo import ModelEntry, hookimpl, import_reference

FAMILY = "torchvision"


@hookimpl
def register_models(register) -> None:
    register_family(register, FAMILY)


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs: Any):
    """Build a torchvision model with random weights; `kwargs` (e.g. num_classes) go to the builder."""
    builder = import_reference(entry.builder)
    return builder(weights=None, **{**entry.builder_kwargs, **kwargs})
