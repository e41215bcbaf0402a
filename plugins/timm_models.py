"""Built-in plugin: the most used timm pretrained models (records from registry.toml) and their builder."""

from __future__ import annotations

from typing import Any

from zoo_plugins import register_family

from zoo import ModelEntry, hookimpl, import_reference

FAMILY = "timm"


@hookimpl
def register_models(register) -> None:
    register_family(register, FAMILY)


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs: Any):
    """Build a timm model with random weights (`timm.create_model(..., pretrained=False)`)."""
    builder = import_reference(entry.builder)
    return builder(pretrained=False, **{**entry.builder_kwargs, **kwargs})
