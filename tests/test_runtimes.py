"""Verification runtimes as plugins: onnxruntime built in, OpenVINO and OpenCV DNN as extras, a plugin's own.

Real runtimes where installed (the `openvino` / `opencv` extras); a plugin runtime built on onnxruntime
stands in for one that disagrees or breaks, since a real runtime cannot be made to on purpose.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from zoo import hookimpl
from zoo.cli.app import app
from zoo.errors import UserInputError
from zoo.exporting import VerificationError, export
from zoo.registry import catalogues

runner = CliRunner()

TINY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


class SqueezeExcite(Tiny):
    # mobilenet_v3's squeeze-and-excitation: channel weights from a pooled map, multiplied back in
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        w = nn.functional.hardsigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head((x * w).mean((2, 3)))
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny_runtime_models.py"
    path.write_text(textwrap.dedent(TINY))
    return f"{path}:Tiny"


def check_opencv_catches(model: str, out, input_shape, weights=None) -> None:
    """OpenCV 5.0's DNN module computes a squeeze-and-excitation block of a dynamo export wrongly (while
    onnxruntime and OpenVINO agree to 1e-6): zoo must refuse to write the file, with the numbers."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("openvino")
    try:
        report = export(
            model, out, weights=weights, input_shape=input_shape, exporter="dynamo", runtimes=["openvino", "opencv"]
        )
    except VerificationError as failure:
        assert f"opencv {cv2.__version__} (dnn, CPU) disagrees with PyTorch" in str(failure)
        assert not out.exists()
        summary = failure.report.to_dict()["verification"]["runtimes"]
        assert summary["onnxruntime"]["passed"] and summary["openvino"]["passed"] and not summary["opencv"]["passed"]
        assert summary["openvino"]["max_abs"] < 1e-4 and summary["opencv"]["max_abs"] > 1e-2
        return
    # An OpenCV that computes it right: then it must agree as closely as the others.
    summary = report.to_dict()["verification"]["runtimes"]
    assert all(s["passed"] and s["max_abs"] < 1e-4 for s in summary.values())
    assert not cv2.__version__.startswith("5.0.0"), "OpenCV 5.0.0 was seen to disagree here"


class OrtSession:
    """onnxruntime with a twist applied to its outputs: what a runtime with a wrong kernel would return."""

    def __init__(self, path, twist):
        self.session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.label, self.twist = "twisted-ort 1.0 (CPU)", twist

    def run(self, feeds):
        return [self.twist(o) for o in self.session.run(None, feeds)]


class TwistedRuntimes:
    @hookimpl
    def register_runtimes(self, register):
        register("same", lambda path, device="cpu", fp16=False: OrtSession(path, lambda o: o))
        register("off", lambda path, device="cpu", fp16=False: OrtSession(path, lambda o: o + np.float32(0.01)))
        register("broken", lambda path, device="cpu", fp16=False: OrtSession(path, lambda o: 1 / 0))

        class Missing:
            def check(self):
                raise UserInputError("--runtime needs acme_rt, which is not installed: pip install acme-rt")

            def __call__(self, path, device="cpu", fp16=False):
                raise AssertionError("never loaded: check() failed first")

        register("missing", Missing())


def test_builtin_catalogue_has_the_three_runtimes():
    assert catalogues.runtimes().names()[:3] == ["onnxruntime", "openvino", "opencv"]
    assert {catalogues.runtimes().owner(n) for n in ("onnxruntime", "openvino", "opencv")} == {"runtimes"}


def test_a_plugin_runtime_that_agrees_is_reported_beside_onnxruntime(tiny, tmp_path, add_plugin):
    add_plugin(TwistedRuntimes(), "twisted")
    report = export(tiny, tmp_path / "t.onnx", input_shape=(1, 3, 8, 8), exporter="torchscript", runtimes=["same"])
    assert report.verified and [r.name for r in report.verification.runtimes] == ["same"]
    summary = report.to_dict()["verification"]["runtimes"]
    assert list(summary) == ["onnxruntime", "same"] and summary["same"]["passed"]
    assert summary["same"]["max_abs"] == report.verification.max_abs and len(summary["same"]["checks"]) == 3
    json.dumps(report.to_dict())


def test_a_runtime_that_disagrees_fails_the_export_with_its_numbers(tiny, tmp_path, add_plugin):
    add_plugin(TwistedRuntimes(), "twisted")
    out = tmp_path / "t.onnx"
    with pytest.raises(VerificationError, match=r"twisted-ort 1.0 \(CPU\) disagrees with PyTorch.*max abs diff 0.01"):
        export(tiny, out, input_shape=(1, 3, 8, 8), exporter="torchscript", runtimes=["same", "off"])
    assert not out.exists()
    result = runner.invoke(
        app, ["export", tiny, "-o", str(out), "--input", "1x3x8x8", "--runtime", "off", "--runtime", "same", "--json"]
    )
    assert result.exit_code == 6, result.output
    summary = json.loads(result.stdout)["verification"]["runtimes"]
    assert summary["onnxruntime"]["passed"] and not summary["off"]["passed"] and summary["same"]["passed"]
    assert summary["off"]["max_abs"] == pytest.approx(0.01, rel=1e-3)
    assert not out.exists()


def test_a_runtime_that_breaks_fails_with_its_message(tiny, tmp_path, add_plugin):
    add_plugin(TwistedRuntimes(), "twisted")
    with pytest.raises(VerificationError, match="could not run the ONNX model .ZeroDivisionError: division by zero"):
        export(tiny, tmp_path / "t.onnx", input_shape=(1, 3, 8, 8), exporter="torchscript", runtimes=["broken"])


def test_unknown_or_missing_runtimes_fail_before_exporting(tiny, tmp_path, add_plugin):
    add_plugin(TwistedRuntimes(), "twisted")
    result = runner.invoke(app, ["export", tiny, "-o", str(tmp_path / "t.onnx"), "--runtime", "tensorrt"])
    assert result.exit_code == 2 and "--runtime 'tensorrt': no such runtime" in result.stderr
    assert "onnxruntime, openvino, opencv" in result.stderr
    result = runner.invoke(app, ["export", tiny, "-o", str(tmp_path / "t.onnx"), "--runtime", "missing"])
    assert result.exit_code == 2 and "pip install acme-rt" in result.stderr
    result = runner.invoke(app, ["export", tiny, "-o", str(tmp_path / "t.onnx"), "--runtime", "same", "--no-verify"])
    assert result.exit_code == 2 and "leave out --no-verify" in result.stderr
    assert list(tmp_path.glob("*.onnx")) == []


def test_openvino_verifies_and_reports(tiny, tmp_path):
    pytest.importorskip("openvino")
    report = export(
        tiny, tmp_path / "t.onnx", input_shape=(1, 3, 16, 16), exporter="torchscript", runtimes=["openvino"]
    )
    (runtime,) = report.verification.runtimes
    assert runtime.passed and runtime.label.startswith("openvino 20") and runtime.max_abs < 1e-4
    assert [c.input_shape[0] for c in runtime.checks] == [1, 2, 3]


def test_opencv_disagreement_on_squeeze_excite_is_caught(tiny, tmp_path):
    check_opencv_catches(tiny.replace(":Tiny", ":SqueezeExcite"), tmp_path / "se.onnx", (1, 3, 16, 16))


@pytest.mark.slow
def test_opencv_disagreement_on_mobilenet_v3_small_is_caught(tmp_path):
    """The issue's finding: mobilenet_v3_small's output in OpenCV 5 differs completely from onnxruntime's."""
    check_opencv_catches("torchvision.models:mobilenet_v3_small", tmp_path / "mnv3.onnx", (1, 3, 96, 96), "none")
