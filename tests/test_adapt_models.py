"""zoo adapt on real torchvision/timm key layouts with generated weights (no network)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torchvision
from torch import nn

import zoo
from zoo.adapt.errors import VerifyError
from zoo.errors import UserInputError


def trained(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights with trained-like BatchNorms (measured statistics), so a wrong match cannot go unnoticed."""
    from zoo.adapt.trained import trained_like

    return trained_like(module, seed)


def outputs(report):
    """The comparisons of what the mode names (not the stages)."""
    return [c for c in report.verify.comparisons if c.kind == "output"]


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resnet18.pth"
    torch.save(trained(torchvision.models.resnet18()).state_dict(), path)
    return path


def test_resnet_backbone_infers_depth_verifies_and_equals_seed_recipe(resnet18_file, tmp_path):
    model, report = zoo.adapt(
        "ResNetBackbone", "resnet18", from_weights=resnet18_file, output=tmp_path / "o.safetensors"
    )
    assert report.target_kwargs["depth"] == 18
    assert report.verify.passed and report.verify.mode == "features" and report.verify.max_abs == 0.0
    assert [c.source for c in outputs(report)] == ["layer1", "layer2", "layer3", "layer4"]
    assert {d.key for d in report.plan.dropped} == {"fc.weight", "fc.bias"}
    # The seed recipe: filter the pretrained dict by the model's keys, update, load_state_dict(strict=False).
    pretrained = torch.load(resnet18_file)
    from zoo.targets import build_target

    recipe = build_target("ResNetBackbone", {"depth": 18}).model
    model_dict = recipe.state_dict()
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict})
    recipe.load_state_dict(model_dict, strict=False)
    for key, value in recipe.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    from safetensors.torch import load_file

    assert load_file(tmp_path / "o.safetensors").keys() == recipe.state_dict().keys()


def test_resnet_backbone_out_indices_and_errors(resnet18_file):
    model, report = zoo.adapt("ResNetBackbone", resnet18_file, kwargs={"out_indices": (1, 2)}, verify=False)
    assert report.target_kwargs["depth"] == 18  # inferred from the checkpoint's block counts
    assert not hasattr(model, "layer4") and any(d.key.startswith("layer4.") for d in report.plan.dropped)
    outputs = model.eval()(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outputs] == [128, 256]
    with pytest.raises(UserInputError, match="out_indices"):
        zoo.adapt("ResNetBackbone", resnet18_file, kwargs={"out_indices": (1, 4)})
    with pytest.raises(UserInputError, match="depth"):
        zoo.adapt("ResNetBackbone", resnet18_file, kwargs={"depth": 42})


def test_num_classes_and_in_chans_adapters(resnet18_file):
    model, report = zoo.adapt("resnet18", "resnet18", from_weights=resnet18_file, num_classes=7, in_chans=1)
    plan = report.plan.by_key()
    assert plan["fc.weight"].outcome == "MISSING" and "num-classes" in plan["fc.weight"].note
    assert plan["conv1.weight"].outcome == "ADAPTED" and "sum" in plan["conv1.weight"].operation
    assert model.fc.out_features == 7 and model.conv1.in_channels == 1
    source = torch.load(resnet18_file)
    assert torch.allclose(model.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))
    assert report.verify.passed and report.verify.mode == "head input"
    assert {d.key: d.reason for d in report.plan.dropped}["fc.weight"].startswith("old classifier")
    _, report = zoo.adapt("resnet18", resnet18_file, in_chans=4, verify=False)
    op = report.plan.by_key()["conv1.weight"].operation
    assert op == "in_chans 3 -> 4 (repeat, x3/4)"


def test_ssd_vgg_recipe_from_vgg16_features(tmp_path):
    features = trained(torchvision.models.vgg16().features)
    path = tmp_path / "vgg16_features.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model, report = zoo.adapt("SSDVGG", path, rules=[], init="default")
    plan = report.plan.by_key()
    assert plan["vgg.0.weight"].strategy == "prefix" and plan["vgg.28.bias"].source == "features.28.bias"
    assert plan["vgg.31.weight"].outcome == "MISSING" and "XavierConv2d" in plan["vgg.31.weight"].init
    assert plan["vgg.33.bias"].outcome == "MISSING" and torch.count_nonzero(model.vgg[33].bias) == 0
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        conv4_3 = model.eval()(x)[0]
        expected = features[:23](x)
    assert torch.equal(conv4_3, expected)
    assert isinstance(model.vgg, nn.ModuleList) and model.vgg[16].ceil_mode


def _transplant(tv_name: str, timm_ref: str, tmp_path):
    source = trained(getattr(torchvision.models, tv_name)())
    path = tmp_path / f"{tv_name}.pth"
    torch.save(source.state_dict(), path)
    return zoo.adapt(timm_ref, tv_name, from_weights=path)


def test_torchvision_to_timm_mobilenet_v2_is_equal(tmp_path):
    _, report = _transplant("mobilenet_v2", "timm.models:mobilenetv2_100", tmp_path)
    assert report.plan.strategies()["structure"] > 300
    assert report.verify.passed and report.verify.mode == "outputs" and report.verify.max_rel < 1e-5
    assert report.plan.coverage().by_tensors == 1.0 and not report.plan.dropped


def test_torchvision_to_timm_efficientnet_b0_is_equal(tmp_path):
    _, report = _transplant("efficientnet_b0", "timm:efficientnet_b0", tmp_path)
    assert report.plan.by_key()["blocks.0.0.se.conv_reduce.weight"].source == "features.1.0.block.1.fc1.weight"
    assert report.verify.passed and report.verify.max_rel < 1e-5


def test_regnet_whose_builder_computes_on_the_meta_device_transplants_exactly(tmp_path):
    path = tmp_path / "regnet_y_400mf.pth"
    torch.save(trained(torchvision.models.regnet_y_400mf()).state_dict(), path)  # the F, trained-like
    model, report = zoo.adapt("timm:regnety_004", "torchvision:regnet_y_400mf", from_weights=path, verify=True)
    assert report.verify.status == "equal" and report.plan.coverage().by_tensors == 1.0
    plan = report.plan.by_key()  # torchvision runs the shortcut first, timm last: aligned by use, not by order
    assert plan["s2.b1.downsample.conv.weight"].source == "trunk_output.block2.block2-0.proj.0.weight"
    assert plan["s2.b1.conv1.conv.weight"].source == "trunk_output.block2.block2-0.f.a.0.weight"
    assert sum(c.kind == "stage" for c in report.verify.comparisons) >= 4
    assert not any(t.is_meta for t in model.state_dict().values())


@pytest.fixture(scope="module")
def fresh_vit_file(tmp_path_factory):
    """A freshly built vit_b_16, as in the issue: its head is zero, so its outputs are all zero."""
    path = tmp_path_factory.mktemp("vit") / "vit_b_16.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.vit_b_16().state_dict(), path)
    return path


def test_vit_bare_parameters_are_fed_and_a_zero_head_cannot_fake_equality(fresh_vit_file):
    _, report = zoo.adapt("timm:vit_base_patch16_224", "torchvision:vit_b_16", from_weights=fresh_vit_file)
    plan = report.plan.by_key()
    assert plan["cls_token"].source == "class_token" and plan["pos_embed"].source == "encoder.pos_embedding"
    assert report.plan.coverage().by_tensors == 1.0
    check = report.verify
    assert check.status == "equal" and {"head.weight", "head.bias"} <= set(check.seeded)
    assert check.input_shape == (2, 3, 224, 224) and sum(c.kind == "stage" for c in check.comparisons) == 13


def test_vit_with_the_class_token_left_out_of_the_file_fails_verification(fresh_vit_file, tmp_path):
    state = torch.load(fresh_vit_file)
    del state["class_token"]
    path = tmp_path / "no-class-token.pth"
    torch.save(state, path)
    with pytest.raises(VerifyError) as info:
        zoo.adapt("timm:vit_base_patch16_224", "torchvision:vit_b_16", from_weights=path)
    check = info.value.report.verify
    assert check.status == "different" and "lacks 1 tensors of torchvision:vit_b_16 (class_token)" in check.reason
    assert info.value.report.plan.by_key()["cls_token"].outcome == "MISSING"


class Wrapped(nn.Module):
    """resnet18 one level down (`body.`), so that names match by prefix and rules can rename blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.body = torchvision.models.resnet18()

    def forward(self, x):
        return self.body(x)


def test_a_transplant_with_two_blocks_swapped_fails():
    source = trained(torchvision.models.resnet18())
    _, report = zoo.adapt(Wrapped(), source, verify=True)
    assert report.verify.status == "equal"
    swap = [r"^layer1\.0\.=>body.layer1.1.", r"^layer1\.1\.=>body.layer1.0."]
    with pytest.raises(VerifyError) as info:
        zoo.adapt(Wrapped(), source, rules=swap, verify=True)
    assert info.value.report.plan.by_key()["body.layer1.0.conv1.weight"].source == "layer1.1.conv1.weight"
    stages = [c for c in info.value.report.verify.comparisons if c.kind == "stage"]
    assert next(c.target for c in stages if not c.passed) == "body.layer1"  # found where it starts
    assert "first difference: stage layer1 -> body.layer1" in info.value.report.verify.reason


def test_any_architecture_timm_or_torchvision_can_build_by_name():
    from zoo.errors import UnknownModelError
    from zoo.targets import build_target, family_entry, resolve

    entry = family_entry("timm", "mobilenetv2_100")
    assert entry is not None and entry.builder_kwargs["model_name"] == "mobilenetv2_100" and not entry.weights
    assert family_entry("torchvision", "resnet18").builder.endswith(":resnet18")
    assert family_entry("timm", "no_such_architecture") is None
    with pytest.raises(UnknownModelError):
        resolve("timm:no_such_architecture")
    assert type(build_target("timm:mobilenetv2_100", meta_device=True).model).__name__ == "EfficientNet"


@pytest.mark.slow
def test_torchvision_to_timm_resnet50_is_equal(tmp_path):
    _, report = _transplant("resnet50", "timm:resnet50", tmp_path)
    assert report.plan.strategies()["exact"] == 320
    assert report.verify.passed and report.verify.max_abs == 0.0


def test_user_class_target_via_subprocess_cli(tmp_path, resnet18_file):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        from torch import nn

        class MyNet(nn.Module):
            def __init__(self, classes=3):
                super().__init__()
                self.backbone = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64))
                self.head = nn.Linear(64, classes)
    """)
    )
    env = {**os.environ, "ZOO_DEBUG": "0"}
    command = [
        sys.executable,
        "-m",
        "zoo",
        "adapt",
        "my_models.py:MyNet",
        "--from",
        str(resnet18_file),
        "--arg",
        "classes=5",
        "--rule",
        r"^conv1\.=>backbone.0.",
        "--rule",
        r"^bn1\.=>backbone.1.",
        "-o",
        "out.pth",
        "--report",
        "report.json",
    ]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target_kwargs"] == {"classes": 5}
    assert {k["key"]: k["strategy"] for k in report["keys"]}["backbone.0.weight"] == "rule"
    assert report["counts"]["MISSING"]["params"] == 2
    assert torch.load(tmp_path / "out.pth")["head.weight"].shape == (5, 64)
    strict = subprocess.run(command + ["--strict"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert strict.returncode == 11 and "--strict" in strict.stderr
    torch.save({"unrelated.weight": torch.zeros(2, 2, 2)}, tmp_path / "other.pth")
    command[6] = "other.pth"
    nothing = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 10 and "not one tensor" in nothing.stderr


def test_feature_backbone_for_a_timm_classifier_through_features_only(tmp_path):
    import timm

    path = tmp_path / "timm-resnet18.pth"
    torch.save(trained(timm.create_model("resnet18")).state_dict(), path)
    kwargs = {"model": "timm:resnet18", "out_indices": (1, 3)}  # timm's indices: 0 is the stem
    model, report = zoo.adapt("FeatureBackbone", "timm:resnet18", from_weights=path, kwargs=kwargs)
    assert [c.source for c in outputs(report)] == ["layer1", "layer3"] and report.verify.passed
    assert report.verify.max_abs == 0.0
    dropped = {d.key.split(".")[0] for d in report.plan.dropped}
    assert dropped == {"fc", "layer4"}  # features_only builds only the stages asked for
    assert [o.shape[1] for o in model.eval()(torch.randn(1, 3, 64, 64))] == [64, 256]


def test_feature_backbone_for_a_torchvision_classifier(resnet18_file):
    model, report = zoo.adapt(
        "FeatureBackbone", "resnet18", from_weights=resnet18_file, kwargs={"model": "resnet18", "out_indices": (1, 3)}
    )
    assert [c.source for c in outputs(report)] == ["layer2", "layer4"] and report.verify.passed
    assert {d.key for d in report.plan.dropped} == {"fc.weight", "fc.bias"}
    with pytest.raises(UserInputError, match="out_indices"):
        zoo.adapt("FeatureBackbone", resnet18_file, kwargs={"model": "resnet18", "out_indices": (9,)})
