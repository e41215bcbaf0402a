"""Built-in plugin: every timm architecture and pretrained tag (from the catalogue), and their builder."""

from __future__ import annotations

from typing import Any

from zoo_plugins.catalogue import family_entries, known_params

from zoo import ModelEntry, hookimpl, import_reference

FAMILY = "timm"


@hookimpl
def register_models(register) -> None:
    for entry in family_entries(FAMILY, "timm", _rows_from_installed):
        register(entry)


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs: Any):
    """Build a timm model with random weights (`timm.create_model(..., pretrained=False)`).

    A weight set's builder_kwargs name `arch.tag`, so the model gets that tag's head and input size.
    """
    builder = import_reference(entry.builder)
    return builder(pretrained=False, **{**entry.builder_kwargs, **kwargs})


def _rows_from_installed(shipped_rows: list[dict]) -> list[dict]:
    from zoo_plugins.timm_catalogue import catalogue_rows

    return catalogue_rows(known_params=known_params(shipped_rows))
