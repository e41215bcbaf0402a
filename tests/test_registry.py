"""Look-up, patterns, suggestions, duplicates and overrides, on the shipped catalogue and test plugins."""

from __future__ import annotations

import pytest

import zoo
from zoo import ModelEntry, WeightSet, hookimpl
from zoo.errors import DuplicateError, UnknownModelError


def test_default_tag_tag_and_tag_alias():
    default = zoo.resolve("resnet50")
    assert default.entry.qualified_name == "torchvision:resnet50"
    assert default.weights.tag == "tv2_in1k" and default.weights.file_name == "resnet50-11ad3fa6.pth"
    v1 = zoo.resolve("resnet50.tv_in1k")
    assert v1.weights.hash_prefix == "0676ba61" and v1.name == "resnet50.tv_in1k"
    assert zoo.resolve("resnet50.IMAGENET1K_V1").weights is v1.weights


def test_family_prefix_picks_the_family():
    assert zoo.resolve("timm:resnet50").entry.family == "timm"
    assert zoo.resolve("timm:resnet50").weights.tag == "a1_in1k"
    assert zoo.resolve("torchvision:resnet50").entry.family == "torchvision"
    with pytest.raises(UnknownModelError, match="unknown family 'nope'"):
        zoo.resolve("nope:resnet50")


def test_unknown_names_suggest_three_close_ones():
    with pytest.raises(UnknownModelError) as info:
        zoo.get_entry("resnet5")
    message = str(info.value)
    assert message.startswith("unknown model 'resnet5'; did you mean resnet50, ")
    assert message.endswith("? (`zoo list` shows every model)")
    close = message.split("did you mean ")[1].split("?")[0].split(", ")
    assert len(close) == 3 and all(name.startswith("resnet5") for name in close), close
    with pytest.raises(UnknownModelError, match="has no weight set 'v9'"):
        zoo.resolve("resnet18.v9")


def test_patterns_exclude_family_and_pretrained():
    names = zoo.list_models("resnet*", exclude="*18*", family="torchvision")
    assert "torchvision:resnet50" in names and "torchvision:resnet18" not in names
    assert all(n.startswith("torchvision:resnet") for n in names)
    assert zoo.list_models("timm:vit_*") == [n for n in zoo.list_models(family="timm") if ":vit_" in n]
    assert set(zoo.list_models(pretrained=True)) <= set(zoo.list_models())


class Alias:
    @hookimpl
    def register_models(self, register):
        register(
            ModelEntry(
                name="tiny",
                family="mine",
                builder="torch.nn:Identity",
                aliases=("tiny_v0",),
                weights=(WeightSet(tag="a", url="https://x/tiny-aaaa1111.pth", aliases=("OLD",)),),
            )
        )


def test_aliases_of_models_and_tags(add_plugin):
    add_plugin(Alias(), "alias-plugin")
    selection = zoo.resolve("tiny_v0.old")
    assert selection.entry.qualified_name == "mine:tiny" and selection.weights.tag == "a"
    assert selection.entry.plugin == "alias-plugin"


class Resnet50Again:
    overrides = None

    @hookimpl
    def register_models(self, register):
        entry = ModelEntry(
            name="resnet50",
            family="torchvision",
            builder="torch.nn:Identity",
            weights=(WeightSet(tag="mirror", url="https://mirror.example/resnet50-11ad3fa6.pth"),),
        )
        register(entry, overrides=self.overrides)


def test_duplicate_across_plugins_names_both(add_plugin):
    add_plugin(Resnet50Again(), "company")
    with pytest.raises(DuplicateError) as info:
        zoo.list_models()
    assert "'torchvision'" in str(info.value) and "'company'" in str(info.value)


def test_declared_override_replaces_and_is_recorded(add_plugin):
    plugin = Resnet50Again()
    plugin.overrides = "torchvision"
    add_plugin(plugin, "company")
    assert zoo.resolve("resnet50").weights.url.startswith("https://mirror.example/")
    from zoo.registry import catalogues

    (override,) = catalogues.overrides()
    assert (override.winner, override.loser, override.name) == ("company", "torchvision", "torchvision:resnet50")


def test_user_registry_file_on_top(tmp_path, monkeypatch):
    path = tmp_path / "extra.toml"
    path.write_text('[[models]]\nname = "mynet"\nfamily = "mine"\nbuilder = "torch.nn:Identity"\n')
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    assert zoo.get_entry("mynet").plugin == "ZOO_REGISTRY:extra.toml"


def test_create_model_builds_through_family_builder():
    model = zoo.create_model("resnet18", num_classes=10)
    assert type(model).__name__ == "ResNet" and model.fc.out_features == 10
    timm_model = zoo.create_model("timm:resnet18", num_classes=5)
    assert timm_model.get_classifier().out_features == 5
