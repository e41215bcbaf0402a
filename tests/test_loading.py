"""The safe loader: formats, unwrapping, refusal of malicious pickles, pretrained loading and inspect."""

from __future__ import annotations

import json
import os

import pytest
import torch
from http_server import http_server  # noqa: F401 - the fixture
from typer.testing import CliRunner
from weights_fixtures import (
    checkpoint_bytes,
    hashed_name,
    registry_entry,
    resnet18_state_dict,
    sha256_hex,
    write_registry,
)

import zoo
from zoo.cli.app import app
from zoo.registry import catalogues
from zoo.weights.loading import (
    CheckpointError,
    UnsafeCheckpointError,
    WeightsMismatchError,
    load_checkpoint,
    load_weights,
)


@pytest.fixture(scope="module")
def resnet18_sd():
    return resnet18_state_dict()


@pytest.mark.parametrize(
    ("wrap", "prefix", "unwrapped"),
    [
        (None, "", []),
        ("state_dict", "", ["['state_dict'] (beside epoch)"]),
        ("model", "module.", ["['model'] (beside epoch)", "prefix module. (DataParallel/DDP)"]),
        ("model_state", "", ["['model_state'] (beside epoch)"]),
    ],
)
def test_containers_and_dataparallel_prefix_are_unwrapped(tmp_path, resnet18_sd, wrap, prefix, unwrapped):
    state = {prefix + k: v for k, v in resnet18_sd.items()}
    path = tmp_path / "w.pth"
    torch.save({wrap: state, "epoch": 3} if wrap else state, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.unwrapped == unwrapped and checkpoint.format == "pickle"
    assert list(checkpoint.state_dict) == list(resnet18_sd)
    assert all(torch.equal(checkpoint.state_dict[k], v) for k, v in resnet18_sd.items())


def test_safetensors_and_legacy_format_load(tmp_path, resnet18_sd):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in resnet18_sd.items()}, tmp_path / "w.safetensors")
    checkpoint = load_checkpoint(tmp_path / "w.safetensors")
    assert checkpoint.format == "safetensors" and len(checkpoint.state_dict) == 122
    torch.save(resnet18_sd, tmp_path / "old.pth", _use_new_zipfile_serialization=False)  # cannot be mmapped
    assert torch.equal(load_checkpoint(tmp_path / "old.pth").state_dict["fc.weight"], resnet18_sd["fc.weight"])


class Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_naming_the_global_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(2), "payload": Exploit(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        load_checkpoint(path)
    assert "system" in str(error.value) and "--trust-pickle" in str(error.value)
    assert not marker.exists()
    result = CliRunner().invoke(app, ["inspect", str(path), "--no-fits"])
    assert result.exit_code == 6 and "system" in result.output and not marker.exists()
    load_checkpoint(path, trust_pickle=True)  # the explicit opt-in really does unpickle it
    assert marker.exists()


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    path = tmp_path / "empty.pth"
    torch.save({"epoch": 1, "lr": 0.1}, path)
    with pytest.raises(CheckpointError, match="no tensors"):
        load_checkpoint(path)


@pytest.fixture
def served_resnet(http_server, tmp_path, monkeypatch, resnet18_sd):  # noqa: F811
    """resnet18 weights with an old-style layout (no num_batches_tracked: 102 entries) behind a test registry."""
    old_style = {k: v for k, v in resnet18_sd.items() if not k.endswith("num_batches_tracked")}
    data = checkpoint_bytes(old_style)
    name = hashed_name("resnet18_local", data)
    url = http_server.add(name, data)
    registry = write_registry(
        tmp_path / "r.toml",
        [
            registry_entry("resnet18_local", url, data),
            registry_entry("resnet18_ten", url, data, num_classes=10),
        ],
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    catalogues.reset()
    return old_style, data


def test_create_model_pretrained_loads_old_style_weights_strictly(served_resnet):
    old_style, _ = served_resnet
    assert len(old_style) == 102
    model = zoo.create_model("resnet18_local", pretrained=True)
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], old_style["layer1.0.conv1.weight"])
    assert len(model.state_dict()) == 122
    weights = load_weights("torchvision:resnet18_local")
    assert list(weights) == list(old_style)


def test_pretrained_weights_that_do_not_fit_raise_a_clear_error(served_resnet):
    with pytest.raises(WeightsMismatchError, match=r"fc.weight \(1000, 512\) vs \(10, 512\)"):
        zoo.create_model("resnet18_ten", pretrained=True)


def test_inspect_explains_num_batches_tracked_groups_keys_and_finds_the_architecture(tmp_path, resnet18_sd):
    old = tmp_path / "resnet18-old.pth"
    torch.save({k: v for k, v in resnet18_sd.items() if not k.endswith("num_batches_tracked")}, old)
    result = CliRunner().invoke(app, ["inspect", str(old), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["tensors"], report["num_batches_tracked"], report["batchnorm_layers"]) == (102, 0, 20)
    assert report["parameters"] == 11689512 and report["dtypes"] == {"float32": 102}
    assert "102 entries" in report["notes"][0] and "122" in report["notes"][0]
    assert {"keys": "layer1.{0..1}.conv1.weight", "count": 2, "shape": "64x64x3x3"} in report["groups"]
    fits = [(f["model"], f["verdict"]) for f in report["fits"]]
    assert ("torchvision:resnet18", "fits") in fits and ("timm:resnet18", "fits") in fits  # the same keys
    assert {verdict for _, verdict in fits} == {"fits"}
    fresh = tmp_path / "fresh.pth"
    torch.save(resnet18_sd, fresh)
    text = CliRunner().invoke(app, ["inspect", str(fresh), "--no-fits"]).output
    assert "122 tensors" in text and "20 num_batches_tracked" in text and "layer1.{0..1}.conv1.weight" in text


def test_state_dict_metadata_survives_loading(tmp_path):
    """torchvision's MNASNet reads its version from `_metadata`; dropping it breaks load_state_dict."""
    import torch
    import torchvision

    from zoo import load_checkpoint

    model = torchvision.models.mnasnet0_5()
    path = tmp_path / "mnasnet.pth"
    torch.save({"module." + k: v for k, v in model.state_dict().items()}, path)  # DataParallel layout, no metadata
    assert not hasattr(load_checkpoint(path).state_dict, "_metadata")
    torch.save(model.state_dict(), path)
    state_dict = load_checkpoint(path).state_dict
    assert state_dict._metadata[""]["version"] == model.state_dict()._metadata[""]["version"]
    torchvision.models.mnasnet0_5().load_state_dict(state_dict)


def test_inspect_names_the_weight_set_when_the_files_hash_is_a_known_one(served_resnet, tmp_path):
    old_style, data = served_resnet
    path = tmp_path / "downloaded-long-ago.pth"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "torchvision:resnet18_local.v1" in report["weights"] and report["sha256"] == sha256_hex(data)
    assert ("torchvision:resnet18", "fits") in [(f["model"], f["verdict"]) for f in report["fits"]]
    other = tmp_path / "retrained.pth"
    torch.save({k: v + 1 for k, v in old_style.items()}, other)  # same architecture, another file
    report = json.loads(CliRunner().invoke(app, ["inspect", str(other), "--json"]).stdout)
    assert report["weights"] == [] and ("torchvision:resnet18", "fits") in [
        (f["model"], f["verdict"]) for f in report["fits"]
    ]
