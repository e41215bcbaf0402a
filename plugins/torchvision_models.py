"""Built-in plugin: every torchvision model and weight set, by task (from the catalogue), and their builder."""

from __future__ import annotations

from typing import Any

from zoo_plugins.catalogue import family_entries

from zoo import ModelEntry, hookimpl, import_reference

FAMILY = "torchvision"


@hookimpl
def register_models(register) -> None:
    for entry in family_entries(FAMILY, "torchvision", _rows_from_installed):
        register(entry)


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs: Any):
    """Build a torchvision model with random weights, downloading nothing (detection and segmentation
    builders get `weights_backbone=None` too); `kwargs` (e.g. num_classes) go to the builder."""
    from zoo_plugins.torchvision_catalogue import random_weights_kwargs

    builder = import_reference(entry.builder)
    return builder(**{**random_weights_kwargs(builder), **entry.builder_kwargs, **kwargs})


def _rows_from_installed(shipped_rows: list[dict]) -> list[dict]:
    from zoo_plugins.torchvision_catalogue import catalogue_rows

    return catalogue_rows()
