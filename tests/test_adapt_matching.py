"""zoo adapt on small synthetic modules: every strategy, outcome, refusal and the report's counts."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import zoo
from zoo import ModelEntry, Remap, WeightSet, hookimpl
from zoo.adapt.errors import (
    AmbiguousMatchError,
    CoverageError,
    NothingLoadedError,
    StrictLoadError,
    VerifyError,
)
from zoo.adapt.report import group_keys


class Net(nn.Module):
    def __init__(self, classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.fc = nn.Linear(width, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def trained(module: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.normal_()
            m.bias.data.normal_()
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
    return module.eval()


def outcomes(report) -> dict[str, str]:
    return {item.key: item.outcome for item in report.plan.keys}


def test_exact_match_loads_and_reports_counts():
    source = trained(Net())
    model, report = zoo.adapt(Net(), source.state_dict())
    assert set(outcomes(report).values()) == {"LOADED"}
    counts = report.plan.counts()
    assert counts["LOADED"] == {"params": 6, "buffers": 3}
    assert report.plan.coverage().by_params == 1.0
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_prefix_strip_and_add_are_recorded():
    sd = {f"module.{k}": v for k, v in trained(Net()).state_dict().items()}
    _, report = zoo.adapt(Net(), sd)
    item = report.plan.by_key()["conv.weight"]
    assert (item.outcome, item.strategy, item.source) == ("RENAMED", "prefix", "module.conv.weight")
    assert report.plan.fed_count() == 8

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = Net()

    _, report = zoo.adapt(Wrapped(), trained(Net()).state_dict())
    assert report.plan.by_key()["backbone.fc.bias"].source == "fc.bias"


def test_rule_renames_and_regex_errors():
    sd = {k.replace("conv.", "stem.").replace("fc.", "head."): v for k, v in trained(Net()).state_dict().items()}
    _, report = zoo.adapt(Net(), sd, rules=[r"^stem\.=>conv.", r"^head\.=>fc."])
    item = report.plan.by_key()["conv.weight"]
    assert (item.strategy, item.source, item.outcome) == ("rule", "stem.weight", "RENAMED")
    with pytest.raises(zoo.ZooError, match="REGEX=>REPLACEMENT"):
        zoo.adapt(Net(), sd, rules=["no arrow"])


def test_registered_remap_plugin_runs_before_rules(add_plugin):
    class Plugin:
        @hookimpl
        def register_remaps(self, register):
            register(Remap("odd-names", rules=((r"^c0\.", "conv."),), source="*odd*", target="Net"))

    add_plugin(Plugin())
    sd = {k.replace("conv.", "c0."): v for k, v in trained(Net()).state_dict().items()}
    from zoo.adapt.core import Source, plan_load

    plan, _ = plan_load(Net(), Source("odd.pth", dict(sd)), "Net")
    item = plan.by_key()["conv.weight"]
    assert (item.strategy, item.rule) == ("remap", "remap odd-names")


class Renamed(nn.Module):
    """Net with other names (as another library would name it)."""

    def __init__(self, classes: int = 10, width: int = 8):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1)
        self.norm = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(torch.relu(self.norm(self.stem(x))).mean((2, 3)))


def test_structural_alignment_computes_the_same_function():
    source = trained(Net())
    model, report = zoo.adapt(Renamed(), source, verify=True)
    item = report.plan.by_key()["norm.running_var"]
    assert (item.strategy, item.source) == ("structure", "bn.running_var")
    assert report.plan.by_key()["norm.num_batches_tracked"].source == "bn.num_batches_tracked"
    assert report.verify.passed and report.verify.max_abs == 0.0


class TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(4, 4, 1)
        self.second = nn.Conv2d(4, 4, 1)


def test_ambiguous_structure_raises_listing_candidates():
    conv = nn.Conv2d(4, 4, 1).state_dict()
    source = {f"{name}.{leaf}": t for name in ("x", "y", "z") for leaf, t in conv.items()}
    expected = r"target \[first.weight, second.weight\] vs source \[x.weight, y.weight, z.weight\]"
    with pytest.raises(AmbiguousMatchError, match=expected) as info:
        zoo.adapt(TwoConvs(), source)
    assert info.value.exit_code == 14


def test_zero_loaded_raises_with_its_exit_code():
    with pytest.raises(NothingLoadedError) as info:
        zoo.adapt(Net(), {"something.else": torch.zeros(5, 5, 5)})
    assert info.value.exit_code == 10 and info.value.report.plan.fed_count() == 0


def test_reshape_skip_missing_and_dropped():
    class Conv1x1Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(16)  # wrong width: SKIPPED_SHAPE
            self.fc = nn.Conv2d(8, 10, 1)  # a Linear stored as a 1x1 conv: RESHAPED
            self.extra = nn.Linear(4, 4)  # nothing feeds it: MISSING

    source = trained(Net())
    model, report = zoo.adapt(Conv1x1Head(), source.state_dict(), init="xavier")
    got = outcomes(report)
    assert got["fc.weight"] == "RESHAPED" and got["bn.weight"] == "SKIPPED_SHAPE" and got["extra.weight"] == "MISSING"
    assert report.plan.by_key()["extra.weight"].init == "xavier_uniform"
    assert report.plan.by_key()["extra.bias"].init == "zeros"
    assert torch.equal(model.fc.weight.flatten(), source.fc.weight.flatten())
    assert not any(t.is_meta for t in model.state_dict().values())
    dropped = {d.key: d.reason for d in report.plan.dropped}
    assert "bn.running_mean" in dropped and "SKIPPED_SHAPE" in dropped["bn.running_mean"]
    assert report.plan.counts()["SKIPPED_SHAPE"] == {"params": 2, "buffers": 2}  # num_batches_tracked fits


def test_strict_expect_missing_and_min_coverage():
    class Bigger(Net):
        def __init__(self):
            super().__init__()
            self.extra = nn.Linear(8, 8)

    sd = trained(Net()).state_dict()
    with pytest.raises(StrictLoadError, match="extra") as info:
        zoo.adapt(Bigger(), sd, strict=True)
    assert info.value.exit_code == 11
    _, report = zoo.adapt(Bigger(), sd, strict=True, expect_missing=["extra.*"])
    assert report.plan.coverage().by_params < 1
    with pytest.raises(CoverageError) as info:
        zoo.adapt(Bigger(), sd, min_coverage=0.99)
    assert info.value.exit_code == 12


def test_num_batches_tracked_missing_in_source_is_not_a_problem():
    sd = {k: v for k, v in trained(Net()).state_dict().items() if not k.endswith("num_batches_tracked")}
    copies = {k: v.clone() for k, v in sd.items()}
    model, report = zoo.adapt(Net(), sd, strict=True)
    for key, value in copies.items():  # initialising bn's missing counter must not reset the loaded weights
        assert torch.equal(model.state_dict()[key], value) and torch.equal(sd[key], value), key
    assert model.bn.num_batches_tracked == 0
    item = report.plan.by_key()["bn.num_batches_tracked"]
    assert item.outcome == "MISSING" and "eval never reads it" in item.note
    assert report.plan.coverage().by_tensors == 1.0


def test_grouping_and_json_report(tmp_path):
    keys = [f"layer1.{i}.bn1.{leaf}" for i in range(3) for leaf in ("weight", "bias")] + ["fc.weight"]
    assert group_keys(keys) == ["layer1.{0..2}.bn1.*", "fc.weight"]
    _, report = zoo.adapt(Net(), trained(Net()).state_dict(), report_path=tmp_path / "r.json", dry_run=True)
    data = json.loads((tmp_path / "r.json").read_text())
    assert len(data["keys"]) == 9 and data["coverage_by_module"]["bn"]["tensors"] == 4
    assert data["counts"]["LOADED"] == {"params": 6, "buffers": 3}


def test_output_is_written_atomically_in_both_formats(tmp_path):
    from safetensors.torch import load_file

    source = trained(Net())
    zoo.adapt(Net(), source.state_dict(), output=tmp_path / "a.safetensors")
    zoo.adapt(Net(), source.state_dict(), output=tmp_path / "a.pth")
    assert torch.equal(load_file(tmp_path / "a.safetensors")["fc.weight"], source.fc.weight)
    assert torch.equal(torch.load(tmp_path / "a.pth")["bn.running_var"], source.bn.running_var)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth", "a.safetensors"]


class FixedSize(Net):
    """Net that, like a ViT with a fixed patch grid, accepts only its own input size."""

    def forward(self, x):
        assert tuple(x.shape[-2:]) == (96, 96), f"Wrong image size {tuple(x.shape[-2:])}"
        return super().forward(x)


class Gelu(Net):
    """Net computing another function with the same weights: verification must tell."""

    def forward(self, x):
        return self.fc(nn.functional.gelu(self.bn(self.conv(x))).mean((2, 3)))


def odd_to_net(state_dict: dict, model=None) -> dict:
    """The `oddnet` files name the conv `c0.` and store the classifier transposed as `fc_t.weight`."""
    result = {}
    for key, value in state_dict.items():
        if key == "fc_t.weight":
            result["fc.weight"] = value.t().contiguous()  # a tensor the remap computes
        else:
            result[re.sub(r"^c0\.", "conv.", key).replace("fc_t.", "fc.")] = value
    return result


class SourcePlugin:
    """Registry sources: `oddnet` (a Net whose files need the remap `odd-to-net`), `fixednet` (96x96 only)."""

    @hookimpl
    def register_models(self, register):
        register(ModelEntry("oddnet", "oddfam", "unused:build", remap="odd-to-net"))
        weights = WeightSet("w", "https://example.invalid/fixednet-0123abcd.pth", input_size=(3, 96, 96))
        register(ModelEntry("fixednet", "oddfam", "unused:build", weights=(weights,)))

    @hookimpl
    def register_builders(self, register):
        register("oddfam", lambda entry, **kwargs: FixedSize() if entry.name == "fixednet" else Net())

    @hookimpl
    def register_remaps(self, register):
        register(Remap("odd-to-net", function=odd_to_net, description="c0. -> conv., fc_t -> fc (transposed)"))


def test_verification_applies_the_source_entry_remap(add_plugin, tmp_path):
    add_plugin(SourcePlugin())
    source = trained(Net())
    state = {re.sub(r"^conv\.", "c0.", k).replace("fc.", "fc_t."): v for k, v in source.state_dict().items()}
    state["fc_t.weight"] = source.fc.weight.t().contiguous()
    path = tmp_path / "oddnet.pth"
    torch.save(state, path)
    model, report = zoo.adapt(Net(), "oddnet", from_weights=path)
    assert report.plan.by_key()["fc.weight"].strategy == "remap" and torch.equal(model.fc.weight, source.fc.weight)
    check = report.verify
    assert (check.mode, check.passed, check.max_abs, check.input_shape) == ("outputs", True, 0.0, (2, 3, 64, 64))
    with pytest.raises(VerifyError) as info:  # the proof has teeth: another function with the same weights fails
        zoo.adapt(Gelu(), "oddnet", from_weights=path)
    assert info.value.exit_code == 13 and info.value.report.verify.max_abs > 1e-3


def test_verification_falls_back_to_the_input_size_the_model_requires(add_plugin, tmp_path):
    add_plugin(SourcePlugin())
    path = tmp_path / "fixednet.pth"
    torch.save(trained(Net()).state_dict(), path)
    _, report = zoo.adapt(FixedSize(), "fixednet", from_weights=path)
    assert report.verify.passed and report.verify.input_shape == (2, 3, 96, 96)
    assert "2x3x64x64 refused (Wrong image size (64, 64))" in report.verify.reason


class LayerScale(nn.Module):
    """A per-channel scale filled with a constant, with no reset_parameters (as timm's LayerScale)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((dim,), 1e-5))


def test_still_initial_separates_unfed_default_and_heuristic():
    class Scaled(Net):
        def __init__(self):
            super().__init__()
            self.gamma = LayerScale(8)
            self.extra = nn.Linear(8, 8)

    state = trained(Net()).state_dict()
    state["bn.running_mean"], state["bn.running_var"] = torch.zeros(8), torch.ones(8)  # never trained
    state["bn.weight"] = torch.full((8,), 0.5)  # a constant, but not BatchNorm's default: trained
    state["gamma.scale"] = torch.full((8,), 1e-5)
    _, report = zoo.adapt(Scaled(), state, init="xavier")
    found = {t.key: t for t in report.still_initial}
    assert {k: t.kind for k, t in found.items()} == {
        "bn.running_mean": "default init",
        "bn.running_var": "default init",
        "gamma.scale": "constant (heuristic)",
        "extra.weight": "not fed",
        "extra.bias": "not fed",
    }
    assert "BatchNorm2d.reset_parameters()" in found["bn.running_var"].evidence
    assert found["extra.weight"].evidence == "not fed: xavier_uniform" and found["extra.weight"].outcome == "MISSING"
    assert report.to_dict()["still_initial"][0] == {
        "key": "bn.running_mean",
        "outcome": "LOADED",
        "kind": "default init",
        "evidence": found["bn.running_mean"].evidence,
    }


class _Overflowing(nn.Module):
    """Finite where the input is positive, -inf elsewhere (as weights that overflow would give)."""

    def __init__(self, shift: float = 0.0) -> None:
        super().__init__()
        self.shift = shift

    def forward(self, x):
        return torch.where(x > 0, x + self.shift, torch.full_like(x, float("-inf")))


def test_verification_compares_finite_values_and_requires_inf_nan_in_the_same_places():
    from zoo.adapt.verify import verify

    same = verify(_Overflowing(), _Overflowing(), input_shape=(1, 3, 8, 8))
    assert same.passed and same.max_abs == 0.0 and "inf/NaN values in the source's output" in same.reason

    shifted = verify(_Overflowing(), _Overflowing(shift=0.5), input_shape=(1, 3, 8, 8))
    assert not shifted.passed and shifted.max_abs == pytest.approx(0.5)

    moved = verify(_Overflowing(), nn.Identity(), input_shape=(1, 3, 8, 8))
    assert not moved.passed and moved.max_abs == float("inf") and "different places" in moved.reason


def test_verification_of_an_output_that_is_all_inf_fails_and_says_why():
    from zoo.adapt.verify import verify

    class AllInf(nn.Module):
        def forward(self, x):
            return x * float("inf")

    result = verify(AllInf(), AllInf(), input_shape=(1, 3, 4, 4))
    assert not result.passed and "nothing to compare" in result.reason


class ShortcutFirst(nn.Module):
    """Registers and runs its shortcut before the main branch (torchvision's regnet does)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 8, 1, bias=False)
        self.f = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))

    def forward(self, x):
        return self.proj(x) + self.f(x)


class ShortcutLast(nn.Module):
    """The same function with the shortcut registered and run last (timm's regnet)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 1, bias=False)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.downsample = nn.Conv2d(3, 8, 1, bias=False)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x))) + self.downsample(x)


def test_alignment_follows_the_order_of_use_not_of_registration():
    torch.manual_seed(0)
    model, report = zoo.adapt(ShortcutLast(), ShortcutFirst(), verify=True)
    sources = {item.key: item.source for item in report.plan.keys}
    assert sources["conv1.weight"] == "f.0.weight" and sources["downsample.weight"] == "proj.weight"
    assert report.verify.status == "equal"
    from zoo.adapt.usage import usage_order

    order = usage_order(ShortcutFirst(), (3, 8, 8))
    assert order["f.0.weight"] < order["proj.weight"] < order["f.2.weight"]  # the longer branch ranks first


class Tokens(nn.Module):
    """Bare parameters that belong to no submodule (a class token, a position embedding)."""

    def __init__(self, token: str = "cls_token", position: str = "pos_embed") -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, 6, 4, stride=4)
        self.token_name, self.position_name = token, position
        setattr(self, token, nn.Parameter(torch.randn(1, 1, 6)))
        setattr(self, position, nn.Parameter(torch.randn(1, 5, 6)))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([getattr(self, self.token_name).expand(x.shape[0], -1, -1), x], 1)
        return self.head((x + getattr(self, self.position_name)).mean(1))


class InputSize(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(nn.functional.interpolate(x, size=(8, 8)))


def test_bare_parameters_are_aligned():
    torch.manual_seed(0)
    source = InputSize(Tokens("class_token", "pos_embedding"))
    model, report = zoo.adapt(InputSize(Tokens()), source, verify=True)
    by_key = report.plan.by_key()
    assert by_key["inner.cls_token"].source == "inner.class_token"
    assert by_key["inner.pos_embed"].source == "inner.pos_embedding"
    assert report.verify.status == "equal" and report.plan.coverage().by_tensors == 1.0


class Constant(nn.Module):
    def __init__(self, value: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.value = value

    def forward(self, x):
        return self.conv(x) * 0 + self.value


def test_outputs_that_do_not_depend_on_the_input_are_never_equal():
    from zoo.adapt.verify import verify

    for model in (Constant(0.0), Constant(3.0)):
        result = verify(model, model, input_shape=(1, 3, 8, 8))
        assert result.status == "inconclusive" and not result.passed and "prove nothing" in result.reason
    shifted = verify(Constant(0.0), Constant(1.0), input_shape=(1, 3, 8, 8))
    assert shifted.status == "different"

    class SameForEveryImage(nn.Module):
        def forward(self, x):
            return torch.arange(6.0).expand(x.shape[0], 6)

    result = verify(SameForEveryImage(), SameForEveryImage(), input_shape=(1, 3, 8, 8))
    assert result.status == "inconclusive" and "the same for different inputs" in result.reason


def test_inconclusive_has_its_own_exit_code_under_verify():
    from zoo.adapt.errors import InconclusiveError

    with pytest.raises(InconclusiveError, match="inconclusive") as info:
        zoo.adapt(Constant(), Constant(), verify=True)
    assert info.value.exit_code == 15 and info.value.report.verify.status == "inconclusive"
    _, report = zoo.adapt(Constant(), Constant())  # not asked for: reported, not raised
    assert report.verify.status == "inconclusive"


class ZeroHead(Net):
    def __init__(self) -> None:
        super().__init__()
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)


def test_a_zero_head_gets_seeded_values_in_both_models():
    source = trained(ZeroHead())
    model, report = zoo.adapt(Net(), source, verify=True)
    assert report.verify.status == "equal" and {"fc.weight", "fc.bias"} <= set(report.verify.seeded)
    assert torch.count_nonzero(model.fc.weight) == 0  # the returned model holds the source's own values
    assert torch.equal(source.fc.weight, torch.zeros_like(source.fc.weight))  # the source is left as it was
