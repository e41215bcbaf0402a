"""ONNX export: exporters with an `auto` fallback, onnxsim, fp16, metadata, verification against PyTorch.

`zoo.export(...)` (core.export) is the entry point; nothing here imports torch until it is called.
"""

from zoo.exporting.core import export
from zoo.exporting.errors import ExportError, VerificationError
from zoo.exporting.report import ExportReport, OutputCheck, ShapeCheck, Verification

__all__ = ["ExportError", "ExportReport", "OutputCheck", "ShapeCheck", "Verification", "VerificationError", "export"]
