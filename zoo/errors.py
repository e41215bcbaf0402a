"""zoo's exceptions. The CLI maps each to `Error: <message>` and its exit code, in one place."""

from __future__ import annotations


class ZooError(Exception):
    """Base of every error zoo reports to users; the message says what was wrong and what to do."""

    exit_code = 1


class RegistryFileError(ZooError):
    """A registry file is malformed: the message names the file, the entry and the field."""

    exit_code = 3


class UnknownModelError(ZooError, LookupError):
    """A name matches no registered model, weight set or architecture."""

    exit_code = 4


class DuplicateError(ZooError):
    """Two plugins register the same name and neither declares that it overrides the other."""

    exit_code = 3


class PluginError(ZooError):
    """A plugin failed to load or register (fatal only with ZOO_STRICT_PLUGINS=1)."""

    exit_code = 3


class UserInputError(ZooError):
    """An argument or file given on the command line cannot be used as it is."""

    exit_code = 2


class CheckpointError(ZooError):
    """A file is not a checkpoint zoo can read (damaged, cut short, hostile) or holds no usable state dict."""

    exit_code = 6


class UnsafeNameError(UserInputError):
    """A name from outside (URL, registry, mirror index, plugin) could make zoo write outside its folders."""

    exit_code = 2
