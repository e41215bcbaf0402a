"""A tiny zoo plugin: one model in its own family, with a builder that needs no model library."""

from zoo import ModelEntry, WeightSet, hookimpl

__version__ = "0.0.1"


@hookimpl
def register_models(register):
    register(
        ModelEntry(
            name="tinynet",
            family="testfam",
            builder="torch.nn:Identity",
            weights=(WeightSet(tag="demo", url="https://example.invalid/tinynet-00000000.pth"),),
        )
    )


@hookimpl
def register_builders(register):
    def build(entry, **kwargs):
        from zoo import import_reference

        return import_reference(entry.builder)(**{**entry.builder_kwargs, **kwargs})

    register("testfam", build)
