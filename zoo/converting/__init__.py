"""`zoo convert`: batch-convert registry models to ONNX on warm, isolated workers, resumable, with a manifest.

`convert(...)` (core.convert) is the entry point; nothing here imports torch (the workers do).
"""

from zoo.converting.core import ConvertResult, convert
from zoo.converting.executors import ExecutorSettings
from zoo.converting.options import ExportOptions
from zoo.converting.planning import ConvertTask

__all__ = ["ConvertResult", "ConvertTask", "ExecutorSettings", "ExportOptions", "convert"]
