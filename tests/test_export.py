"""zoo export: real exporters, real onnxsim, real onnxruntime, on small models."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zoo.cli.app import app
from zoo.exporting import ExportError, VerificationError, export
from zoo.exporting.metadata import read_metadata

TINY = '''
import torch
from torch import nn


class TinyCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x)))
        return self.head(x.mean((2, 3)))


class Exploding(nn.Module):
    """A random init that grows activations layer after layer, as torchvision's inception_v3 does (~1e12)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(*(nn.Linear(32, 32) for _ in range(8)))
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=3.0)

    def forward(self, x):
        return self.layers(x)


class Backbone(nn.Module):
    """Several named outputs, as a detection backbone from `zoo adapt` gives."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.stage2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.stage3 = nn.Conv2d(16, 32, 3, stride=2, padding=1)

    def forward(self, x):
        c1 = torch.relu(self.stem(x))
        c2 = torch.relu(self.stage2(c1))
        return {"c2": c2, "c3": torch.relu(self.stage3(c2))}


class DataDependent(TinyCNN):
    """Python control flow on a tensor's value: torch.export cannot capture it, tracing takes one path."""

    def forward(self, x):
        y = super().forward(x)
        if y.abs().max() > 1e6:
            y = y / y.abs().max()
        return y


class BatchMixed(TinyCNN):
    """Each sample's output depends on the others in the batch (even in eval mode)."""

    def forward(self, x):
        y = super().forward(x)
        return y + y.mean(0, keepdim=True)


class Eigen(nn.Module):
    """An operator that no ONNX exporter translates."""

    def forward(self, x):
        return torch.linalg.eigvals(x[:, 0]).real


class ExportsDifferently(TinyCNN):
    """Computes something else while being exported: verification must catch it."""

    def forward(self, x):
        exporting = torch.jit.is_tracing() or torch.compiler.is_exporting()
        return super().forward(x) * (2.0 if exporting else 1.0)


def tiny_vit():
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                             num_classes=10)
'''

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path):
    """The path of a file of tiny modules, for MODEL specs like `tiny.py:TinyCNN`."""
    path = tmp_path / "tiny_models.py"
    path.write_text(textwrap.dedent(TINY))
    return str(path)


def cli(*args: str):
    result = runner.invoke(app, list(args))
    return result


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def run_onnx(path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def assert_checked_at_batches(report: dict, batches=(1, 2, 3)) -> None:
    checks = report["verification"]["checks"]
    assert [c["input_shape"][0] for c in checks] == list(batches)
    assert all(c["passed"] for c in checks)


def test_resnet18_from_a_weights_file_exports_verifies_and_records_metadata(tmp_path):
    import torchvision

    model = torchvision.models.resnet18()
    weights = tmp_path / "resnet18-real-layout.pth"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "r18.onnx"
    result = cli("export", "resnet18", "-o", str(out), "--weights", str(weights), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exporter"] == "dynamo" and report["fallback_reason"] is None
    assert report["verified"] and not report["verification"]["degenerate_reference"]
    assert_checked_at_batches(report)
    assert report["verification"]["max_abs"] < 1e-4 and report["verification"]["min_cosine"] > 0.99999
    assert report["nodes_before"] >= report["nodes_after"] > 0
    meta = read_metadata(str(out))
    import hashlib

    assert meta["zoo.model"] == "resnet18" and meta["zoo.weights"] == str(weights)
    assert meta["zoo.weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["zoo.exporter"] == "dynamo" and int(meta["zoo.opset"]) == report["opset"] >= 17
    assert json.loads(meta["zoo.input_shape"]) == [1, 3, 224, 224]
    assert json.loads(meta["zoo.mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert meta["zoo.version"]
    # The file is what it claims: the batch is symbolic and the weights are the file's.
    x = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        model.load_state_dict(torch.load(weights))
        expected = model.eval()(x).numpy()
    np.testing.assert_allclose(run_onnx(out, x.numpy())[0], expected, atol=1e-4, rtol=1e-3)
    assert leftovers(tmp_path) == []


def test_a_half_precision_checkpoint_loads_into_float32_parameters_with_its_module_versions(tmp_path):
    """Weights that are loaded replace a meta-device build: the model keeps its float32 parameters (as a
    copy into real ones would) and MNASNet still reads its version from the file's `_metadata`."""
    import torchvision

    from zoo.exporting.source import load_source

    state = torchvision.models.mnasnet0_5().state_dict()
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = value.half()  # in place: the OrderedDict keeps its _metadata
    path = tmp_path / "mnasnet0_5-fp16.pth"
    torch.save(state, path)
    model = load_source("mnasnet0_5", str(path), None).model
    loaded = model.state_dict()
    assert {t.dtype for k, t in loaded.items() if not k.endswith("num_batches_tracked")} == {torch.float32}
    assert not any(t.is_meta for t in loaded.values())
    for key, value in state.items():
        assert torch.equal(loaded[key], value.float() if value.is_floating_point() else value), key


NET_WITH_DERIVED_BUFFER = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        # made where the weight is (as timm's window masks): on the meta device when the weight is there
        self.register_buffer("scale", torch.full((4, 1, 1), 2.0, device=self.conv.weight.device), persistent=False)

    def forward(self, x):
        return self.conv(x) * self.scale
"""


def test_loaded_weights_need_one_build_on_the_meta_device_and_a_real_one_only_where_a_tensor_is_left(
    tmp_path, monkeypatch
):
    import torchvision

    from zoo.exporting import source

    builds = []
    real_build = source.build_target
    monkeypatch.setattr(source, "build_target", lambda *a, **k: builds.append(k) or real_build(*a, **k))
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    source.load_source("resnet18", str(weights), None)
    assert builds == [{"meta_device": True, "real_buffers": True}]  # no random init of weights about to be replaced

    (tmp_path / "net.py").write_text(NET_WITH_DERIVED_BUFFER)
    spec = f"{tmp_path / 'net.py'}:Net"
    state = {"conv.weight": torch.randn(4, 3, 3, 3), "conv.bias": torch.randn(4)}
    torch.save(state, tmp_path / "net.pth")
    builds.clear()
    model = source.load_source(spec, str(tmp_path / "net.pth"), None).model
    assert builds == [{"meta_device": True, "real_buffers": True}, {}]
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert torch.equal(model.scale, torch.full((4, 1, 1), 2.0)) and torch.equal(model.conv.weight, state["conv.weight"])


def test_mobilenet_v3_small_random_init_gets_seeded_weights_before_its_one_export(tmp_path, monkeypatch):
    """torchvision's init gives mobilenet_v3_small outputs of ~1e-9: comparing with them proves nothing, so with
    --weights none zoo sets seeded weights first, and exports once."""
    from zoo.exporting import core
    from zoo.exporting.verify import seed_weights

    calls = []
    real_export_module = core.export_module
    monkeypatch.setattr(core, "export_module", lambda *a, **k: calls.append(a) or real_export_module(*a, **k))
    out = tmp_path / "mnv3.onnx"
    report = export("torchvision.models:mobilenet_v3_small", out, weights="none", exporter="torchscript").to_dict()
    assert len(calls) == 1  # never exported twice
    verification = report["verification"]
    assert verification["seeded_weights"] == 0 and not verification["degenerate_reference"]
    assert_checked_at_batches(report)
    assert any("seeded weights (seed 0)" in note for note in report["notes"])
    assert read_metadata(str(out))["zoo.weights"] == "none (seeded 0)"
    # The seeded outputs are non-trivial, and the file holds those weights: it matches a seeded model.
    assert all(o["cosine"] > 0.9999 and o["top1"] == 1.0 for c in verification["checks"] for o in c["outputs"])
    import torchvision

    model = torchvision.models.mobilenet_v3_small().eval()
    seed_weights(model, 0)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x).numpy()
    assert float(np.ptp(expected)) > 1e-2
    np.testing.assert_allclose(run_onnx(out, x.numpy())[0], expected, atol=1e-4, rtol=1e-3)


def test_random_weights_whose_outputs_explode_get_seeded_weights(tiny, tmp_path):
    """Outputs of ~1e11 carry float32 rounding errors of ~1e4: no tolerance means anything, so with
    --weights none zoo seeds sane weights first (inception_v3 failed verification this way)."""
    torch.manual_seed(0)
    out = tmp_path / "x.onnx"
    report = export(f"{tiny}:Exploding", out, weights="none", input_shape=(1, 32)).to_dict()
    assert report["verification"]["seeded_weights"] == 0
    assert any("random weights gave outputs of" in note for note in report["notes"]), report["notes"]
    assert not any("float32 rounding alone" in note for note in report["notes"])
    (got,) = run_onnx(out, np.ones((1, 32), np.float32))
    assert np.abs(got).max() < 1e3  # the file holds the seeded weights, not the exploding ones


def test_exploding_real_weights_are_kept_and_said(tiny, tmp_path):
    from zoo.registry.references import import_reference

    torch.manual_seed(0)
    weights = tmp_path / "exploding.pth"
    torch.save(import_reference(f"{tiny}:Exploding")().state_dict(), weights)
    try:
        report = export(f"{tiny}:Exploding", tmp_path / "x.onnx", weights=str(weights), input_shape=(1, 32))
        notes = report.notes
    except VerificationError as error:  # rounding at 1e11 may or may not stay within the tolerance
        notes = error.report.notes
    assert any("float32 rounding alone" in note for note in notes), notes


def test_degenerate_real_weights_are_kept_and_said(tiny, tmp_path):
    """Weights the user gave are never replaced: a degenerate reference is reported, not hidden."""
    from zoo.registry.references import import_reference

    model = import_reference(f"{tiny}:TinyCNN")()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(0.5)
    weights = tmp_path / "constant.pth"
    torch.save(model.state_dict(), weights)
    report = export(f"{tiny}:TinyCNN", tmp_path / "c.onnx", weights=str(weights), input_shape=(1, 3, 8, 8))
    assert report.verified and report.verification.degenerate_reference
    assert report.verification.seeded_weights is None
    assert any("agreement proves little" in note for note in report.notes)
    (out,) = run_onnx(tmp_path / "c.onnx", np.ones((1, 3, 8, 8), np.float32))
    np.testing.assert_allclose(out, 0.5)


def test_small_vit_exports_with_dynamo_where_torchscript_fails(tiny, tmp_path):
    out = tmp_path / "vit.onnx"
    report = export(f"{tiny}:tiny_vit", out, weights="none", input_shape=(1, 3, 32, 32))
    assert report.exporter == "dynamo" and report.verified
    assert report.verification.seeded_weights == 0  # zero-initialised head, as vit_b_16 without weights
    assert [c.input_shape[0] for c in report.verification.checks] == [1, 2, 3]
    with pytest.raises(ExportError, match="_native_multi_head_attention") as failure:
        export(f"{tiny}:tiny_vit", tmp_path / "vit-ts.onnx", input_shape=(1, 3, 32, 32), exporter="torchscript")
    assert "aten::_native_multi_head_attention" in failure.value.unsupported_ops
    assert not (tmp_path / "vit-ts.onnx").exists()


def test_backbone_with_several_outputs_gets_named_outputs(tiny, tmp_path):
    out = tmp_path / "backbone.onnx"
    report = export(f"{tiny}:Backbone", out, input_shape=(1, 3, 64, 64), dynamic_hw=True)
    assert report.output_names == ["c2", "c3"] and report.verified
    shapes = [c.input_shape for c in report.verification.checks]
    assert shapes[-1] == [3, 3, 96, 96]  # the second H x W of --dynamic-hw
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["c2", "c3"]
    c2, c3 = sess.run(None, {"input": np.random.rand(2, 3, 128, 96).astype(np.float32)})
    assert c2.shape == (2, 16, 32, 24) and c3.shape == (2, 32, 16, 12)


def test_batch_dependent_outputs_get_their_own_reference_at_each_batch(tiny, tmp_path):
    """References at batch 1 and 2 are batch 3's first rows only when the model's rows do not mix."""
    report = export(f"{tiny}:BatchMixed", tmp_path / "mixed.onnx", input_shape=(1, 3, 8, 8), exporter="torchscript")
    assert report.verified and [c.input_shape[0] for c in report.verification.checks] == [1, 2, 3]
    assert all(o.max_abs < 1e-4 for c in report.verification.checks for o in c.outputs)


def test_fp16_halves_the_file_and_keeps_float32_io(tiny, tmp_path):
    from zoo.registry.references import import_reference

    model = import_reference(f"{tiny}:TinyCNN")(classes=4000)
    weights = tmp_path / "tiny.safetensors"
    from safetensors.torch import save_file

    save_file(model.state_dict(), weights)
    full, half = tmp_path / "fp32.onnx", tmp_path / "fp16.onnx"
    args = dict(weights=str(weights), input_shape=(1, 3, 16, 16), kwargs={"classes": 4000}, exporter="torchscript")
    export(f"{tiny}:TinyCNN", full, **args)
    report = export(f"{tiny}:TinyCNN", half, fp16=True, **args)
    assert report.verified and report.fp16 and report.verification.atol == 5e-2
    assert 0.4 < half.stat().st_size / full.stat().st_size < 0.6
    proto = onnx.load(str(half))
    float32 = onnx.TensorProto.FLOAT
    assert proto.graph.input[0].type.tensor_type.elem_type == float32
    assert proto.graph.output[0].type.tensor_type.elem_type == float32
    dtypes = {t.data_type for t in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in dtypes and onnx.TensorProto.FLOAT not in dtypes
    assert read_metadata(str(half))["zoo.precision"] == "fp16"
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(half, x)[0], run_onnx(full, x)[0], atol=5e-2, rtol=5e-2)


def test_external_data_uses_a_relative_path_and_survives_a_move(tiny, tmp_path):
    out = tmp_path / "a" / "ext.onnx"
    report = export(
        f"{tiny}:TinyCNN",
        out,
        input_shape=(1, 3, 16, 16),
        exporter="torchscript",
        external_data="always",
        kwargs={"classes": 300},
    )
    assert report.external_data == "ext.onnx.data" and (tmp_path / "a" / "ext.onnx.data").is_file()
    proto = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"ext.onnx.data"}
    modes = {p.name: p.stat().st_mode & 0o777 for p in (out, tmp_path / "a" / "ext.onnx.data")}
    assert modes["ext.onnx.data"] == modes["ext.onnx"], modes  # onnx writes its data file 0600
    shutil.move(tmp_path / "a", tmp_path / "moved")
    x = np.ones((1, 3, 16, 16), np.float32)
    assert run_onnx(tmp_path / "moved" / "ext.onnx", x)[0].shape == (1, 300)
    # Writing the same file again with inline weights removes the now stale data file.
    export(
        f"{tiny}:TinyCNN",
        tmp_path / "moved" / "ext.onnx",
        input_shape=(1, 3, 16, 16),
        exporter="torchscript",
        external_data="never",
        kwargs={"classes": 300},
        verify=False,
    )
    assert not (tmp_path / "moved" / "ext.onnx.data").exists()
    assert leftovers(tmp_path / "moved") == []


def test_static_export_fixes_the_batch(tiny, tmp_path):
    out = tmp_path / "static.onnx"
    report = export(f"{tiny}:TinyCNN", out, input_shape=(2, 3, 16, 16), dynamic_batch=False, exporter="torchscript")
    assert [c.input_shape for c in report.verification.checks] == [[2, 3, 16, 16]]
    assert run_onnx(out, np.ones((2, 3, 16, 16), np.float32))[0].shape == (2, 10)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_onnx(out, np.ones((1, 3, 16, 16), np.float32))


def test_bad_arguments_are_one_line_errors(tiny, tmp_path):
    out = str(tmp_path / "x.onnx")
    cases = [
        (["export", "resnet18", "-o", out, "--weights", "no_such_tag"], 2, "no weight set 'no_such_tag'"),
        (["export", f"{tiny}:TinyCNN", "-o", out, "--input", "3x224"], 2, "fails on an input of shape 1x224"),
        (["export", f"{tiny}:TinyCNN", "-o", out, "--input", "axb"], 2, "--input"),
        (["export", f"{tiny}:TinyCNN", "-o", str(tmp_path / "x.txt")], 2, ".onnx"),
        (["export", f"{tiny}:TinyCNN", "-o", out, "--weights", str(tmp_path / "missing.pth")], None, "missing.pth"),
    ]
    for args, code, text in cases:
        result = cli(*args)
        assert result.exit_code != 0 and result.stderr.startswith("Error: "), (args, result.output)
        assert code is None or result.exit_code == code, (args, result.output)
        assert text is None or text in result.stderr, (args, result.stderr)
    assert not os.path.exists(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is absent")
def test_device_cuda_without_cuda_is_a_clear_error(tiny, tmp_path):
    result = cli("export", f"{tiny}:TinyCNN", "-o", str(tmp_path / "x.onnx"), "--device", "cuda")
    assert result.exit_code == 1 and "CUDA is not available" in result.stderr and "--device cpu" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_export_from_cuda_verifies_against_pytorch_on_cuda(tiny, tmp_path):
    out = tmp_path / "cuda.onnx"
    tf32 = torch.backends.cudnn.allow_tf32
    report = export(f"{tiny}:Backbone", out, input_shape=(1, 3, 64, 64), device="cuda")
    assert report.device == "cuda" and report.verified
    assert report.verification.reference_device == "cuda"
    assert torch.backends.cudnn.allow_tf32 == tf32  # turned off for the reference run only
    assert run_onnx(out, np.ones((2, 3, 64, 64), np.float32))[0].shape == (2, 16, 16, 16)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resnet18_fp16_from_cuda(tmp_path):
    report = export("resnet18", tmp_path / "r18.onnx", weights="none", device="cuda", fp16=True)
    assert report.verified and report.fp16 and report.verification.reference_device == "cuda"


def test_import_zoo_does_not_import_torch():
    code = "import sys, zoo, zoo.cli.export_commands; print(zoo.export.__module__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["zoo.exporting.core", "False"]


def test_data_dependent_control_flow_falls_back_to_torchscript(tiny, tmp_path):
    result = cli("export", f"{tiny}:DataDependent", "-o", str(tmp_path / "dd.onnx"), "--input", "1x3x16x16", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["exporter"] == "torchscript" and report["verified"]
    assert report["fallback_reason"].startswith("dynamo: ") and "data-dependent" in report["fallback_reason"]
    assert read_metadata(str(tmp_path / "dd.onnx"))["zoo.exporter"] == "torchscript"


def test_an_op_no_exporter_supports_fails_naming_the_op(tiny, tmp_path):
    out = tmp_path / "eig.onnx"
    result = cli("export", f"{tiny}:Eigen", "-o", str(out), "--input", "1x3x4x4")
    assert result.exit_code == 5
    assert "Error: operator" in result.stderr and "linalg_eig" in result.stderr
    assert "dynamo:" in result.stderr and "torchscript:" in result.stderr
    assert "Traceback" not in result.output
    assert not out.exists() and leftovers(tmp_path) == []


def test_failed_verification_leaves_the_previous_file_untouched(tiny, tmp_path):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the previous good model")
    with pytest.raises(VerificationError, match="disagrees with PyTorch") as failure:
        export(f"{tiny}:ExportsDifferently", out, input_shape=(1, 3, 8, 8), exporter="torchscript")
    assert out.read_bytes() == b"the previous good model"
    assert leftovers(tmp_path) == []
    report = failure.value.report.to_dict()
    assert report["verified"] is False and report["verification"]["max_abs"] > 1e-3
    json.dumps(report)
    result = cli(
        "export",
        f"{tiny}:ExportsDifferently",
        "-o",
        str(out),
        "--input",
        "1x3x8x8",
        "--exporter",
        "torchscript",
        "--json",
    )
    assert result.exit_code == 6 and json.loads(result.stdout)["verified"] is False
    assert out.read_bytes() == b"the previous good model"


def test_view_serves_the_model_on_loopback(tiny, tmp_path):
    pytest.importorskip("netron")
    import socket
    import time
    import urllib.request

    out = tmp_path / "tiny.onnx"
    export(f"{tiny}:TinyCNN", out, input_shape=(1, 3, 8, 8), exporter="torchscript", verify=False)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "zoo", "view", str(out), "--port", str(port), "--no-browse"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    assert response.status == 200 and b"netron" in response.read().lower()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
                time.sleep(0.3)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_onnxsim_chatter_on_either_descriptor_is_silenced_and_the_rest_kept():
    code = (
        "import os\nfrom zoo.exporting.simplify import _quiet_stdout\n"
        "with _quiet_stdout():\n    os.write(1, b'out')\n    os.write(2, b'err')\n"
        "os.write(1, b'kept'); os.write(2, b'after')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"kept", b"after")


def _graph_with(initializer_bytes: int = 0, constant_bytes: int = 0, in_subgraph: bool = False) -> onnx.GraphProto:
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    weights = [numpy_helper.from_array(np.zeros(initializer_bytes // 4, np.float32), "w")] if initializer_bytes else []
    nodes = []
    if constant_bytes:
        value = numpy_helper.from_array(np.zeros(constant_bytes // 4, np.float32), "c")
        nodes.append(helper.make_node("Constant", [], ["c"], value=value))
    graph = helper.make_graph(nodes, "g", [], [], initializer=weights)
    if not in_subgraph:
        return graph
    branch = helper.make_node("If", ["cond"], [], then_branch=graph, else_branch=helper.make_graph([], "e", [], []))
    return helper.make_graph([branch], "main", [], [])


class _Huge:
    """What upb does for a model past 2 GB (vit_h_14, regnet_y_128gf): ByteSize itself raises."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph

    def ByteSize(self):
        from google.protobuf.message import EncodeError

        raise EncodeError("Failed to serialize proto")


def test_the_protobuf_limit_is_found_where_upb_refuses_to_size_the_message(monkeypatch):
    from zoo.exporting import simplify

    monkeypatch.setattr(simplify, "SURELY_UNDER", 1000)  # 1 kB stands for a gigabyte of weights
    for where in ({"initializer_bytes": 4000}, {"constant_bytes": 4000}, {"constant_bytes": 4000, "in_subgraph": True}):
        assert simplify.over_protobuf_limit(_Huge(_graph_with(**where))), where
    assert not simplify.over_protobuf_limit(onnx.helper.make_model(_graph_with(initializer_bytes=4000)))


def test_a_model_with_few_tensor_bytes_is_under_the_limit_without_being_sized():
    from zoo.exporting import simplify

    assert simplify.tensor_bytes(onnx.helper.make_model(_graph_with(4000, 400, in_subgraph=True))) == 4400
    assert not simplify.over_protobuf_limit(_Huge(_graph_with(initializer_bytes=4000)))  # ByteSize never called


PLACES = ("initializer", "constant", "subgraph initializer", "subgraph constant")


@given(st.lists(st.tuples(st.sampled_from(PLACES), st.integers(100, 3000)), max_size=12))
@settings(max_examples=100, deadline=None)
def test_tensor_bytes_counts_every_tensor_wherever_it_sits(tensors):
    """What the 2 GB check skips sizing rests on: a model's serialized size is its tensor bytes plus a small
    graph. A tensor that `tensor_bytes` missed (an If branch's Constant, say) would show as the difference."""
    from zoo.exporting.simplify import tensor_bytes

    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    graphs = {"": ([], []), "subgraph ": ([], [])}
    for n, (place, floats) in enumerate(tensors):
        where, kind = place.rsplit(" ", 1) if " " in place else ("", place)
        nodes, initializers = graphs[where + " " if where else ""]
        value = numpy_helper.from_array(np.full(floats, n, np.float32), f"t{n}")
        if kind == "initializer":
            initializers.append(value)
        else:
            nodes.append(helper.make_node("Constant", [], [f"t{n}"], value=value))
    body = helper.make_graph(graphs["subgraph "][0], "then", [], [], initializer=graphs["subgraph "][1])
    branch = helper.make_node("If", ["cond"], [], then_branch=body, else_branch=helper.make_graph([], "e", [], []))
    main = helper.make_graph([*graphs[""][0], branch], "main", [], [], initializer=graphs[""][1])
    proto = helper.make_model(main)
    counted = tensor_bytes(proto)
    assert counted == sum(4 * floats for _, floats in tensors)
    assert 0 <= proto.ByteSize() - counted < 64 * len(tensors) + 256  # names, dims and node wrappers only


BIG = """
import torch
from torch import nn


class Big(nn.Module):  # 573M parameters: 2.3 GB of float32, past protobuf's 2 GB
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3 * 8 * 8, 4096)
        self.b = nn.Linear(4096, 140000)

    def forward(self, x):
        return self.b(torch.relu(self.a(x.flatten(1))))[:, :10]
"""


@pytest.mark.slow
def test_a_model_past_2_gb_exports_with_external_data_and_verifies(tmp_path):
    """vit_h_14 and regnet_y_128gf failed so in the sweep (onnxsim's size check raised); 29 s, 10 GB here."""
    source = tmp_path / "big.py"
    source.write_text(BIG)
    out = tmp_path / "big.onnx"
    report = export(f"{source}:Big", out, weights="none", input_shape=(1, 3, 8, 8))
    assert report.verified and report.external_data == "big.onnx.data"
    assert report.simplify_note == "onnxsim cannot take a model over 2 GB"
    assert (tmp_path / "big.onnx.data").stat().st_size > 2**31
    assert out.stat().st_size < 1 << 20


class BatchOfTwoBranch(torch.nn.Module):
    """Branches on the batch size: torch.export refuses a dynamic batch, and torch.onnx's fallback capture
    then fixes it at the example's 2 without an error."""

    def forward(self, x):
        return x * 2 if x.shape[0] == 2 else x


def test_a_dynamic_dim_the_dynamo_exporter_fixes_is_a_dynamo_failure_and_auto_falls_back():
    from zoo.exporting.exporters import ExportSpec, export_module

    spec = ExportSpec((torch.randn(2, 3, 8, 8),), [{0: "batch"}], {0: "batch"}, ["input"], ["output"])
    with pytest.raises(ExportError, match=r"fixed input axis 0 \(batch\) at 2, not dynamic as asked"):
        export_module(BatchOfTwoBranch(), spec, "dynamo")
    exported = export_module(BatchOfTwoBranch(), spec, "auto")
    assert exported.exporter == "torchscript" and "fixed input axis 0 (batch) at 2" in exported.fallback_reason
    assert exported.proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def test_task_wrappers_name_each_graph_input_in_their_signature():
    """torch.export binds dynamic_shapes to forward's parameters: a `*inputs` forward took RAFT's two images
    as one argument and dynamo refused the export."""
    import inspect

    from zoo import tasks

    for task in ("detection", "optical_flow"):
        wrapped = tasks.exportable(task, torch.nn.Identity())
        assert list(inspect.signature(wrapped.forward).parameters) == list(tasks.family(task).input_names)


@given(
    st.lists(  # per graph input: each dim symbolic in the graph or a number, and whether a dynamic one was asked
        st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(1, 64)), min_size=1, max_size=5),
        min_size=1,
        max_size=3,
    )
)
@settings(max_examples=200, deadline=None)
def test_fixed_axes_names_exactly_the_asked_dims_that_came_out_numbers(graph):
    from onnx import TensorProto, helper

    from zoo.exporting.exporters import ExportSpec, fixed_axes

    inputs, asked, expected = [], [], []
    for index, dims in enumerate(graph):
        shape = [f"d{index}_{axis}" if symbolic else size for axis, (symbolic, _, size) in enumerate(dims)]
        inputs.append(helper.make_tensor_value_info(f"in{index}", TensorProto.FLOAT, shape))
        asked.append({axis: f"d{axis}" for axis, (_, wanted, _) in enumerate(dims) if wanted})
        expected += [
            f"in{index} axis {axis} (d{axis}) at {size}"
            for axis, (symbolic, wanted, size) in enumerate(dims)
            if wanted and not symbolic
        ]
    proto = helper.make_model(helper.make_graph([], "g", inputs, []))
    spec = ExportSpec((), asked, {}, [i.name for i in inputs], [])
    assert fixed_axes(proto, spec) == expected
