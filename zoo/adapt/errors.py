"""Why `zoo adapt` refused a load; each has its own exit code so scripts can tell them apart."""

from __future__ import annotations

from typing import Any

from zoo.errors import ZooError


class AdaptError(ZooError):
    """A transplant was refused; `report` (when set) is the report of the refused load."""

    exit_code = 10

    def __init__(self, message: str, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class NothingLoadedError(AdaptError):
    """Not one target tensor was fed from the source."""

    exit_code = 10


class StrictLoadError(AdaptError):
    """`--strict`: some target keys were not fed and are not covered by `--expect-missing`."""

    exit_code = 11


class CoverageError(AdaptError):
    """Coverage is below `--min-coverage`."""

    exit_code = 12


class VerifyError(AdaptError):
    """Source and target outputs differ by more than the tolerance."""

    exit_code = 13


class AmbiguousMatchError(AdaptError):
    """Structural alignment found more than one candidate and will not guess."""

    exit_code = 14


class InconclusiveError(AdaptError):
    """`--verify`: the proof could not tell (the source's outputs do not depend on the input, or cannot run)."""

    exit_code = 15
