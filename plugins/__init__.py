"""zoo's built-in plugins, loaded through the same plugin manager and hooks as third-party ones."""

from importlib.resources import files
from pathlib import Path


def builtin_registry_path() -> Path:
    """The curated registry.toml shipped with zoo."""
    return Path(str(files(__name__) / "registry.toml"))


def register_family(register, family: str) -> None:
    """Register the entries of `family` from the shipped registry.toml."""
    from zoo import read_registry_file

    for entry in read_registry_file(builtin_registry_path(), plugin=family, family=family):
        register(entry)
