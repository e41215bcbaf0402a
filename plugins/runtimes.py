"""Built-in plugin: the runtimes `zoo export` verifies an ONNX file in (onnxruntime always; `--runtime openvino`,
`--runtime opencv` with the `zoo[openvino]` / `zoo[opencv]` extras).

Registration imports nothing: each runtime imports its engine when a file is loaded.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from zoo import hookimpl
from zoo.errors import UserInputError


def _onnx_io(path: str) -> tuple[list[str], list[str]]:
    """The graph's input names (initializers excluded) and output names, without loading the weights."""
    import onnx

    graph = onnx.load(path, load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers], [o.name for o in graph.output]


class Runtime:
    """A runtime that needs `module` (from `extra`) installed; `open(path, device, fp16)` returns its session."""

    def __init__(self, module: str, extra: str | None, open_session) -> None:
        self.module, self.extra, self.open_session = module, extra, open_session

    def check(self) -> None:
        if importlib.util.find_spec(self.module) is None:
            install = f"pip install 'zoo[{self.extra}]'" if self.extra else f"pip install {self.module}"
            raise UserInputError(f"--runtime needs {self.module}, which is not installed: {install}")

    def __call__(self, path: str, *, device: str = "cpu", fp16: bool = False) -> Any:
        self.check()
        return self.open_session(path, device, fp16)


class OnnxRuntimeSession:
    """onnxruntime: the CUDA provider for `--device cuda` when installed, else CPU (zoo.exporting.verify.session)."""

    def __init__(self, path: str, device: str, fp16: bool) -> None:
        import onnxruntime

        from zoo.exporting.verify import session

        self.session, self.provider, self.optimization = session(path, device, fp16)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.label = f"onnxruntime {onnxruntime.__version__} ({self.provider})"

    def run(self, feeds: dict) -> list:
        return self.session.run(None, feeds)


class OpenVinoSession:
    """OpenVINO on its CPU device at f32 inference precision (its default on some CPUs is bf16)."""

    def __init__(self, path: str, device: str, fp16: bool) -> None:
        import openvino

        core = openvino.Core()
        self.compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self.input_names, self.output_names = _onnx_io(path)
        self.label = f"openvino {openvino.__version__.split('-')[0]} (CPU)"

    def run(self, feeds: dict) -> list:
        result = self.compiled(feeds)
        return [result[port] for port in self.compiled.outputs]


class OpenCvSession:
    """OpenCV's DNN module (cv2.dnn.readNetFromONNX) on its default CPU backend."""

    def __init__(self, path: str, device: str, fp16: bool) -> None:
        import cv2

        self.cv2 = cv2
        self.net = cv2.dnn.readNetFromONNX(path)
        self.input_names, self.output_names = _onnx_io(path)
        self.label = f"opencv {cv2.__version__} (dnn, CPU)"

    def run(self, feeds: dict) -> list:
        for name, value in feeds.items():
            self.net.setInput(value, name)
        outputs = self.net.forward(self.output_names)
        return list(outputs)


@hookimpl
def register_runtimes(register) -> None:
    register("onnxruntime", Runtime("onnxruntime", None, OnnxRuntimeSession))
    register("openvino", Runtime("openvino", "openvino", OpenVinoSession))
    register("opencv", Runtime("cv2", "opencv", OpenCvSession))
