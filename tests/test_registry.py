"""Look-up, patterns, suggestions, duplicates and overrides, on the shipped catalogue and test plugins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- listing as timm users expect: patterns on arch.tag, the per-weight-set view, filters, sorting ---


def test_patterns_match_arch_tag_as_timm_does():
    import timm

    assert sorted(zoo.list_models("timm:vit_*.augreg*", weights=True)) == sorted(  # zoo: default tag first
        f"timm:{name}" for name in timm.list_models("vit_*.augreg*", pretrained=True)
    )
    in22k = zoo.list_models("*in22k*")
    assert in22k and all(
        any("in22k" in w.tag for w in zoo.get_entry(name).weights) or "in22k" in name for name in in22k
    )
    models = set(zoo.list_models("resnet50.*"))
    assert models == {"torchvision:resnet50", "timm:resnet50"}  # not resnet50d: the dot is the tag's
    weights = zoo.list_models("timm:resnet50.*", weights=True)
    assert sorted(weights) == sorted(f"timm:{name}" for name in timm.list_models("resnet50.*", pretrained=True))
    assert zoo.list_models("resnet50.IMAGENET1K_V2", weights=True) == ["torchvision:resnet50.tv2_in1k"]


def test_weights_view_is_timms_pretrained_view_plus_torchvisions():
    import timm
    import torchvision.models as tvm

    timm_view = zoo.list_models(family="timm", weights=True)  # by architecture, each one's default tag first
    assert sorted(timm_view) == sorted(f"timm:{name}" for name in timm.list_models(pretrained=True))
    for arch in ("resnet50", "vit_base_patch16_224", "convnext_tiny"):  # the default is timm's default
        assert zoo.resolve(f"timm:{arch}").weights.tag == timm.models.get_pretrained_cfg(arch).tag
    tv_view = zoo.list_models(family="torchvision", weights=True)
    assert len(tv_view) == sum(len(tvm.get_model_weights(n)) for n in tvm.list_models())
    excluded = zoo.list_models("timm:resnet50.*", exclude="*.a1*", weights=True)
    assert excluded and not any(".a1" in n for n in excluded)
    assert len(excluded) == len(zoo.list_models("timm:resnet50.*", weights=True)) - 2  # a1_in1k, a1h_in1k


def test_task_filter_and_the_quantized_tag():
    import torchvision.models as tvm

    detection = {n.split(":")[1] for n in zoo.list_models(task="detection")}
    assert detection == {n for n in tvm.list_models() if ".detection." in tvm.get_model_builder(n).__module__}
    quantized = zoo.list_models(task="quantized")
    assert quantized and all(zoo.get_entry(n).task == "classification" for n in quantized)
    assert all(n.startswith("torchvision:quantized_") for n in quantized)
    video = zoo.list_models(task="video", weights=True)
    assert video and all(len(zoo.resolve(n).weights.input_size) == 4 for n in video)
    with pytest.raises(zoo.ZooError, match="unknown task 'detect'"):
        zoo.list_models(task="detect")


def test_bounds_on_top1_params_gmacs_and_input_size():
    every = [zoo.resolve(n) for n in zoo.list_models(weights=True)]
    good = set(zoo.list_models(min_top1=85, weights=True))
    assert good == {f"{s.entry.family}:{s.name}" for s in every if s.weights.top1 is not None and s.weights.top1 >= 85}
    from zoo.api import query_rows
    from zoo.registry.query import row_params

    small = query_rows(max_params="10M")  # each model with the weight set that passed
    assert small and all(row_params(row) <= 10e6 for row in small)
    assert zoo.list_models(max_params="10M") == [row.entry.qualified_name for row in small]
    googlenet = next(row for row in small if row.entry.name == "googlenet")  # 13M as built, 6.6M as published
    assert row_params(googlenet) < 10e6 < googlenet.entry.params
    bare = [e for e in zoo.list_models(max_params="10M", family="timm") if not zoo.get_entry(e).weights]
    assert bare, "architectures without weights pass on their own parameter count"
    cheap = zoo.list_models(max_gmacs=1, weights=True)
    assert cheap and all(zoo.resolve(n).weights.gmacs <= 1 for n in cheap)  # timm has no GMACs: none of it
    sized = zoo.list_models(input_size="384", weights=True)
    assert sized and all(zoo.resolve(n).weights.input_size[-2:] == (384, 384) for n in sized)
    assert zoo.list_models(input_size="3x16x112x112", weights=True)
    assert set(zoo.list_models(min_params=1e9)) == set(zoo.list_models(min_params="1B"))
    with pytest.raises(zoo.ZooError, match="write e.g. 25M"):
        zoo.list_models(max_params="ten million")


@settings(max_examples=40, deadline=None)
@given(st.floats(0.001, 5000), st.sampled_from(["", "k", "K", "M", "m", "B", "G"]))
def test_parse_count_reads_what_people_write(number, suffix):
    from zoo.registry.query import parse_count

    scale = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9}[suffix.lower()]
    assert parse_count(f"{number}{suffix}") == pytest.approx(number * scale)


def test_sorting_by_params_gmacs_top1_and_name():
    def values(names, field):
        selections = [zoo.resolve(n) for n in names]
        return [getattr(s.weights, field) if s.weights else s.entry.params for s in selections]

    by_params = zoo.list_models(family="torchvision", sort="params", weights=True)
    params = values(by_params, "params")
    assert params == sorted(params) and len(set(params)) > 50
    largest = zoo.list_models(family="torchvision", sort="params", reverse=True, weights=True)[0]
    assert zoo.resolve(largest).weights.params == params[-1]
    top1 = [v for v in values(zoo.list_models(sort="top1", weights=True), "top1") if v is not None]
    assert top1 == sorted(top1, reverse=True)
    last = zoo.list_models(sort="top1", weights=True)[-1]
    assert zoo.resolve(last).weights.top1 is None  # unknown values go last
    gmacs = values(zoo.list_models(sort="gmacs", weights=True, family="torchvision"), "gmacs")
    assert gmacs == sorted(gmacs)
    names = zoo.list_models("resnet*", sort="name")
    assert names == sorted(names)
    with pytest.raises(zoo.ZooError, match="sort by one of"):
        zoo.list_models(sort="size")


# --- legacy files: torchvision's pre-0.13 URLs are files of today's weight sets ---


def test_legacy_torchvision_files_are_known_as_their_weight_sets():
    from zoo.registry import catalogues

    registry = catalogues.models()
    for file_name, name, prefix in (
        ("resnet18-5c106cde.pth", "torchvision:resnet18", "5c106cde"),
        ("resnet50-19c8e357.pth", "torchvision:resnet50", "19c8e357"),
        ("vgg11-bbd30ac9.pth", "torchvision:vgg11", "bbd30ac9"),
    ):
        selection = registry.find_file(file_name)
        assert selection.entry.qualified_name == name and selection.weights.tag == "tv_in1k"
        assert selection.weights.hash_prefix == prefix and selection.weights.file_name == file_name
        assert selection.weights.url == f"https://download.pytorch.org/models/{file_name}"
        assert selection.weights.meta["legacy_of"] == zoo.resolve(f"{name}.tv_in1k").weights.url
    assert registry.find_file("vgg16-397923af.pth").weights.url == zoo.resolve("vgg16.tv_in1k").weights.url
    assert registry.find_file("resnet18-00000000.pth") is None
    timm_release = registry.find_file("bat_resnext26ts_256-fa6fd595.pth")  # timm's GitHub release, before the hub
    assert timm_release.name == "bat_resnext26ts.ch_in1k" and timm_release.weights.hash_prefix == "fa6fd595"


def test_a_file_named_as_a_legacy_file_with_other_content_is_refused_naming_both_hashes():
    from zoo.registry import catalogues
    from zoo.registry.model_registry import MisnamedFileError

    other = "ab" * 32
    with pytest.raises(MisnamedFileError) as info:
        catalogues.models().check_file("resnet18-5c106cde.pth", other)
    message = str(info.value)
    assert "torchvision:resnet18.tv_in1k" in message and "5c106cde" in message and other in message
    assert catalogues.models().check_file("not-a-known-file.pth", other) is None


class LegacyFile:
    """A test weight set whose legacy file is content this test generates (the real files cannot be fetched)."""

    def __init__(self, legacy_name: str):
        self.legacy_name = legacy_name

    @hookimpl
    def register_models(self, register):
        weights = WeightSet(
            tag="v1", url="https://x.example/tiny-11112222.pth", legacy_urls=(f"https://x.example/{self.legacy_name}",)
        )
        register(ModelEntry(name="tinylegacy", family="mine", builder="torch.nn:Identity", weights=(weights,)))


def test_a_legacy_file_whose_content_matches_is_recognised_and_imported(add_plugin, tmp_path):
    from weights_fixtures import checkpoint_bytes, sha256_hex, tiny_state_dict

    from zoo.registry import catalogues
    from zoo.weights.fetching import import_file

    data = checkpoint_bytes(tiny_state_dict())
    sha = sha256_hex(data)
    name = f"tiny-{sha[:8]}.pth"
    add_plugin(LegacyFile(name), "legacy-plugin")
    selection = catalogues.models().check_file(name, sha)
    assert selection.name == "tinylegacy.v1" and selection.weights.hash_prefix == sha[:8]
    assert catalogues.models().find_by_hash(sha) == [selection]
    (tmp_path / name).write_bytes(data)
    (result,) = import_file(tmp_path / name)
    assert (result.name, result.tag, result.sha256) == ("mine:tinylegacy", "v1", sha)
    assert result.path.name.startswith("tiny-") and result.path.read_bytes() == data

    renamed = tmp_path / "resnet18-5c106cde.pth"  # the same bytes under the name of a real legacy file
    renamed.write_bytes(data)
    with pytest.raises(zoo.ZooError, match=rf"resnet18\.tv_in1k.*5c106cde.*{sha}"):
        import_file(renamed)
