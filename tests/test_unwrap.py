"""Training checkpoints as users have them: each layout written the way its tool writes it, then unwrapped,
identified and loaded into the right model."""

from __future__ import annotations

import argparse

import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zoo.cli.app import app
from zoo.errors import CheckpointError
from zoo.weights.inspection import find_fitting_models
from zoo.weights.loading import load_checkpoint, load_into
from zoo.weights.unwrap import backbone_of, unwrap


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    with torch.no_grad():  # trained-like BatchNorm statistics, so a swapped tensor would show
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return model


@pytest.fixture(scope="module")
def raw(resnet18):
    return {k: v.clone() for k, v in resnet18.state_dict().items()}


def prefixed(state: dict, prefix: str) -> dict:
    return {prefix + k: v for k, v in state.items()}


def assert_loads_into_resnet18(state: dict, expected: dict) -> None:
    model = torchvision.models.resnet18()
    load_into(model, state, "test")
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key


def lightning(state: dict) -> dict:
    """What Lightning's Trainer.save_checkpoint writes for a LightningModule holding `self.model`."""
    return {
        "epoch": 4,
        "global_step": 500,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": prefixed(state, "model."),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 5}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25)}},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "params": [0, 1]}]}],
        "lr_schedulers": [{"last_epoch": 4}],
        "hparams_name": "kwargs",
        "hyper_parameters": {"lr": 0.1, "arch": "resnet18"},
    }


def timm_train(state: dict, ema: dict | None) -> dict:
    """What timm's train.py (CheckpointSaver) writes: args is the script's argparse.Namespace."""
    saved = {
        "epoch": 3,
        "arch": "resnet18",
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.05, "params": [0]}]},
        "version": 2,
        "args": argparse.Namespace(model="resnet18", lr=0.05, model_ema=ema is not None),
        "metric": 71.5,
    }
    if ema is not None:
        saved["state_dict_ema"] = ema
    return saved


def test_dataparallel_compile_and_nested_prefixes(tmp_path, raw, resnet18):
    compiled = torch.compile(resnet18)  # lazily compiled: its state_dict has torch.compile's real prefix
    cases = {
        "module.": prefixed(raw, "module."),
        "_orig_mod.": dict(compiled.state_dict()),
        "module._orig_mod.": prefixed(dict(compiled.state_dict()), "module."),
        "_orig_mod.module.": prefixed(prefixed(raw, "module."), "_orig_mod."),
    }
    for name, state in cases.items():
        path = tmp_path / "w.pth"
        torch.save(state, path)
        checkpoint = load_checkpoint(path)
        prefixes = [s.split()[1] for s in checkpoint.unwrapped if s.startswith("prefix")]
        assert "".join(prefixes) == name, (name, checkpoint.unwrapped)
        assert_loads_into_resnet18(checkpoint.state_dict, raw)


def test_lightning_checkpoint(tmp_path, raw):
    path = tmp_path / "epoch=4-step=500.ckpt"
    torch.save(lightning(raw), path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.unwrapped[0].startswith("['state_dict'] (beside epoch, global_step")
    assert checkpoint.unwrapped[-1] == "prefix model. (LightningModule attribute)"
    assert_loads_into_resnet18(checkpoint.state_dict, raw)


def test_timm_train_output_takes_the_ema_by_default_and_says_so(tmp_path, raw):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    path = tmp_path / "model_best.pth.tar"
    torch.save(timm_train(raw, ema), path)
    default = load_checkpoint(path)
    assert default.ema is True and default.unwrapped[0].startswith("['state_dict_ema']")
    assert_loads_into_resnet18(default.state_dict, ema)
    assert_loads_into_resnet18(load_checkpoint(path, ema=True).state_dict, ema)
    chosen = load_checkpoint(path, ema=False)
    assert chosen.ema is False and chosen.unwrapped[0].startswith("['state_dict']")
    assert_loads_into_resnet18(chosen.state_dict, raw)
    torch.save({**timm_train(raw, None), "ema": {"decay": 0.9998, "enabled": False}}, path)  # settings, no weights
    assert load_checkpoint(path).ema is None
    with pytest.raises(CheckpointError, match="--ema: the checkpoint holds no EMA weights"):
        load_checkpoint(path, ema=True)


def test_inspect_says_which_weights_it_read(tmp_path, raw):
    ema = {k: v * 2 if v.is_floating_point() else v for k, v in raw.items()}
    path = tmp_path / "checkpoint-3.pth.tar"
    torch.save(timm_train(raw, ema), path)
    runner = CliRunner()
    result = runner.invoke(app, ["inspect", str(path), "--no-keys", "--no-fits"])
    assert result.exit_code == 0, result.output
    assert "unwrapped: ['state_dict_ema']" in result.output
    result = runner.invoke(app, ["inspect", str(path), "--no-keys", "--no-fits", "--no-ema"])
    assert result.exit_code == 0 and "unwrapped: ['state_dict'] (beside" in result.output, result.output


def test_mmpretrain_layout(tmp_path, raw):
    """mmpretrain's ImageClassifier: `backbone.` (torchvision's ResNet names) and `head.fc.`, with `meta`."""
    state = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in raw.items()}
    path = tmp_path / "resnet18_8xb32_in1k.pth"
    torch.save({"meta": {"epoch": 100, "mmengine_version": "0.10"}, "state_dict": state}, path)
    checkpoint = load_checkpoint(path)
    assert checkpoint.unwrapped[-1].startswith("mmpretrain layout")
    assert_loads_into_resnet18(checkpoint.state_dict, raw)


def test_a_model_with_head_and_backbone_modules_is_not_mistaken_for_mmpretrain():
    state = {"backbone.weight": torch.zeros(2), "head.fc.weight": torch.zeros(2)}
    assert list(unwrap(state).state_dict) == list(state)  # no mmengine `meta` beside it
    assert list(unwrap({"state_dict": state, "epoch": 1}).state_dict) == list(state)
    assert list(unwrap({"state_dict": state, "meta": {}}).state_dict) == ["weight", "fc.weight"]
    other = {"backbone.weight": torch.zeros(2), "head.proj.weight": torch.zeros(2)}  # a head that is not head.fc
    assert list(unwrap({"state_dict": other, "meta": {}}).state_dict) == list(other)


@pytest.fixture(scope="module")
def detector_state():
    """A real torchvision Faster R-CNN with a ResNet-18 FPN body (FrozenBatchNorm: no num_batches_tracked)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    return FasterRCNN(backbone, num_classes=91).state_dict()


def test_detection_backbone_is_found_and_named(detector_state, tmp_path):
    found = backbone_of(detector_state)
    assert found is not None and "backbone.body." in found.steps[0] and "fpn, roi_heads, rpn" in found.steps[0]
    resnet18 = torchvision.models.resnet18().state_dict()
    expected = {k for k in resnet18 if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    assert set(found.state_dict) == expected
    fits = find_fitting_models(detector_state)
    assert ("torchvision:resnet18", "headless") in [(f.model, f.verdict) for f in fits]
    assert all(f.via and "backbone.body." in f.via for f in fits)
    model = torchvision.models.resnet18()
    missing = model.load_state_dict(found.state_dict, strict=False)
    assert sorted(missing.missing_keys) == ["fc.bias", "fc.weight"]  # BatchNorm fills in num_batches_tracked
    assert torch.equal(model.state_dict()["layer4.1.bn2.running_var"], found.state_dict["layer4.1.bn2.running_var"])


def test_a_whole_detector_is_not_cut_down_when_it_fits_as_it_is():
    with torch.device("meta"):
        model = torchvision.models.detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    fits = find_fitting_models(model.state_dict())
    assert fits[0].model == "torchvision:fasterrcnn_resnet50_fpn" and fits[0].verdict == "fits" and fits[0].via is None


@pytest.mark.parametrize(
    ("layout", "prefix"),
    [("dataparallel", "module."), ("lightning", "model."), ("compile", "_orig_mod."), ("nested", "module._orig_mod.")],
)
def test_wrapped_checkpoints_are_identified(tmp_path, raw, layout, prefix):
    state = lightning(raw) if layout == "lightning" else prefixed(raw, prefix)
    path = tmp_path / "w.pth"
    torch.save(state, path)
    fits = find_fitting_models(load_checkpoint(path).state_dict)
    assert ("torchvision:resnet18", "fits") in [(f.model, f.verdict) for f in fits]


def test_zoo_adapt_takes_the_ema_or_the_raw_weights_and_says_which(tmp_path, raw):
    from safetensors.torch import load_file

    ema = {k: v * 1.5 if v.is_floating_point() else v for k, v in raw.items()}
    path = tmp_path / "model_best.pth.tar"
    torch.save(timm_train(prefixed(raw, "module."), ema), path)
    runner = CliRunner()
    for flag, expected, said in ((None, ema, "its EMA weights"), ("--no-ema", raw, "the raw weights, not its EMA")):
        out = tmp_path / f"adapted{flag}.safetensors"
        args = ["adapt", "torchvision:resnet18", "--from", str(path), "-o", str(out), *([flag] if flag else [])]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert said in result.output, result.output
        adapted = load_file(out)
        assert torch.equal(adapted["layer1.0.conv1.weight"], expected["layer1.0.conv1.weight"])
        assert torch.equal(adapted["bn1.running_var"], expected["bn1.running_var"])
    torch.save(timm_train(raw, None), path)
    result = runner.invoke(app, ["adapt", "torchvision:resnet18", "--from", str(path), "--ema", "--dry-run"])
    assert result.exit_code == 6 and "holds no EMA weights" in result.output, result.output


def test_zoo_adapt_feeds_a_classifier_from_a_detector_backbone(tmp_path, detector_state):
    from safetensors.torch import load_file

    path = tmp_path / "fasterrcnn_resnet18_fpn.pth"
    torch.save(detector_state, path)
    out = tmp_path / "resnet18.safetensors"
    result = CliRunner().invoke(app, ["adapt", "torchvision:resnet18", "--from", str(path), "-o", str(out)])
    assert result.exit_code == 0, result.output
    adapted = load_file(out)
    for key in ("conv1.weight", "layer4.1.bn2.running_var", "layer3.0.downsample.0.weight"):
        assert torch.equal(adapted[key], detector_state[f"backbone.body.{key}"]), key


def test_an_unknown_wrapper_prefix_is_looked_past_when_identifying(raw):
    """A LightningModule whose attribute is `net` (not a prefix zoo strips when loading): still named."""
    fits = find_fitting_models({f"net.encoder.{k}": v for k, v in raw.items()})
    assert ("torchvision:resnet18", "fits") in [(f.model, f.verdict) for f in fits]
    assert all(f.via == "without the prefix net.encoder. every key has" for f in fits)
    assert find_fitting_models({f"net.{k}": v for k, v in raw.items() if k.startswith("layer1.")}) == []


ENTRY_KINDS = ("tensor", "dtype", "packed", "packed without bias", "int", "string", "tuple of ints", "empty tuple")


def _entry(kind: str, n: int):
    weight = torch.full((2, 2), float(n))
    return {
        "tensor": weight,
        "dtype": torch.qint8,
        "packed": (weight, torch.zeros(2)),
        "packed without bias": (weight, None),
        "int": n,
        "string": f"epoch {n}",
        "tuple of ints": (n, n + 1),
        "empty tuple": (),
    }[kind]


@given(st.lists(st.sampled_from(ENTRY_KINDS), min_size=1, max_size=10), st.booleans())
@settings(max_examples=100, deadline=None)
def test_packed_parameters_are_kept_apart_and_everything_else_that_is_not_a_tensor_dropped(kinds, wrapped):
    """A quantized module's dtype and (weight, bias) entries go back to load_state_dict; ints, strings and
    other tuples do not, and the steps count what was dropped."""
    kinds = ["tensor", *kinds]  # a state dict holds at least one tensor
    prefix = "module." if wrapped else ""
    state = {f"{prefix}layer{n}.{kind.replace(' ', '_')}": _entry(kind, n) for n, kind in enumerate(kinds)}
    found = unwrap(state, "generated.pth")
    packing = {"dtype", "packed", "packed without bias"}
    assert list(found.state_dict) == [f"layer{n}.{k.replace(' ', '_')}" for n, k in enumerate(kinds) if k == "tensor"]
    assert list(found.packed) == [f"layer{n}.{k.replace(' ', '_')}" for n, k in enumerate(kinds) if k in packing]
    dropped = sum(k not in packing | {"tensor"} for k in kinds)
    assert any(f"dropped {dropped} non-tensor" in step for step in found.steps) == bool(dropped)
