"""Errors of `zoo export`; each is a ZooError, so the CLI prints one line and exits with its code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.exporting.report import ExportReport


class ExportError(ZooError):
    """No exporter could turn the model into ONNX; the message names the exporters and the failing op."""

    exit_code = 5

    def __init__(self, message: str, unsupported_ops: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.unsupported_ops = unsupported_ops


class VerificationError(ZooError):
    """The ONNX model disagrees with PyTorch beyond the tolerances; `report` holds the figures."""

    exit_code = 6

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report
