"""The registry: records, the model registry, registry files, the catalogues plugins fill, references."""
