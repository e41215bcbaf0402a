"""The shipped catalogue agrees with the installed torchvision and timm; the rebuild when they differ; building.

Counts come from the libraries themselves (nothing hard-coded). Regenerate with scripts/generate_registry.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from repo_scripts import load_script
from zoo_plugins import catalogue

import zoo
from zoo.registry import catalogues
from zoo.registry.index import installed_version, read_index
from zoo.registry.records import TASKS, hash_prefix_from_file_name

ROOT = Path(__file__).resolve().parents[1]


def entries(family: str) -> list:
    return [e for e in catalogues.models() if e.family == family]


def test_shipped_indexes_are_for_the_installed_versions():
    import timm
    import torchvision

    for family, module in (("torchvision", torchvision), ("timm", timm)):
        header = read_index(catalogue.shipped_index(family))
        assert header["version"] == module.__version__.split("+")[0] == installed_version(family), family


def test_cheap_installed_version_agrees_with_importlib_metadata():
    from importlib.metadata import version

    for distribution in ("torchvision", "timm", "typer", "pluggy"):
        assert installed_version(distribution) == version(distribution).split("+")[0]
    assert installed_version("no-such-distribution-zoo") is None


@pytest.fixture(scope="module")
def generator():
    return load_script("generate_registry")


def test_a_sample_of_the_torchvision_index_is_what_the_installed_torchvision_generates():
    """One model of each task family and a random few, generated again (all of them under slow)."""
    from zoo_plugins.torchvision_catalogue import catalogue_rows

    from zoo.registry.index import normalised_rows

    shipped = {row["name"]: row for row in read_index(catalogue.shipped_index("torchvision"))["models"]}
    names = [*SAMPLE_TORCHVISION, *random.Random(2).sample(sorted(shipped), 4)]
    assert normalised_rows(catalogue_rows(names), "sample") == [shipped[name] for name in names]


SAMPLE_TORCHVISION = ["resnet18", "quantized_resnet18", "ssd300_vgg16", "fcn_resnet50", "r3d_18", "raft_small"]


@pytest.mark.slow
def test_torchvision_index_is_what_the_installed_torchvision_generates(generator, tmp_path):
    expected = generator.index_text("torchvision", generator.family_rows("torchvision"), tmp_path / "tv.json")
    assert catalogue.shipped_index("torchvision").read_text() == expected, "run: python scripts/generate_registry.py"


def test_timm_index_is_what_the_installed_timm_generates(generator, tmp_path):
    """Everything but the parameter counts (carried over here; a sample is counted below, all under slow)."""
    rows = generator.family_rows("timm", reuse_params=True)
    expected = generator.index_text("timm", rows, tmp_path / "timm.json")
    assert catalogue.shipped_index("timm").read_text() == expected, "run: python scripts/generate_registry.py"


def test_every_torchvision_model_and_weight_set_is_registered_with_its_task():
    import torchvision.models as tvm

    names = tvm.list_models()
    assert {e.name for e in entries("torchvision")} == set(names)
    assert sum(len(e.weights) for e in entries("torchvision")) == sum(len(tvm.get_model_weights(n)) for n in names)
    for name in names:
        entry = zoo.get_entry(f"torchvision:{name}")
        module = tvm.get_model_builder(name).__module__
        expected_task = next((t for t in TASKS if f".{t}." in module), "classification")
        assert entry.task == expected_task and [t for t in entry.tags if t in TASKS] == [expected_task], name
        assert ("quantized" in entry.tags) == (".quantization." in module), name
        enum = tvm.get_model_weights(name)
        assert entry.default_weights.url == enum.DEFAULT.url
        for member in enum:
            weights = entry.weight_set(member.name)
            assert weights is not None and weights.url == member.url
            # the `-<sha256 prefix>.` in the file name torch.hub checks (the quantized `_37f702c5.pth` have none)
            assert weights.hash_prefix == hash_prefix_from_file_name(member.url.rsplit("/", 1)[1])
            assert weights.hash_prefix or "/quantized/" in member.url
            assert weights.params == member.meta["num_params"] and weights.gmacs == member.meta["_ops"]
            size = weights.input_size
            assert len(size) == (4 if entry.task == "video" else 3) and size[0] == 3, (name, size)


def test_every_timm_architecture_and_pretrained_tag_is_registered_and_fetchable():
    import timm
    from timm.models import get_pretrained_cfg

    assert {e.name for e in entries("timm")} == set(timm.list_models())
    tags = {f"{e.name}.{w.tag}": w for e in entries("timm") for w in e.weights}
    assert set(tags) == set(timm.list_models(pretrained=True))
    for entry in entries("timm"):  # the default weight set is the one timm.create_model(arch) builds for
        assert not entry.weights or entry.default_weights.tag == get_pretrained_cfg(entry.name).tag, entry.name
    for name in random.Random(0).sample(sorted(tags), 200):
        cfg, weights = get_pretrained_cfg(name), tags[name]
        if cfg.hf_hub_id:  # the file timm's load_state_dict_from_hf reads: the safetensors alternative first
            assert weights.url == f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors", name
            assert weights.format == "safetensors" and weights.legacy_urls == ((cfg.url,) if cfg.url else ())
        else:
            assert weights.url == cfg.url and weights.format == "pth", name
        assert weights.input_size == tuple(cfg.input_size) and weights.mean == tuple(cfg.mean), name
        assert weights.num_classes == (cfg.num_classes or None) and weights.license == cfg.license, name
        assert weights.builder_kwargs == {"model_name": name}


def test_every_file_has_one_cache_name_and_every_cache_name_one_file():
    """Two weight sets share a file only when timm publishes one file for both (e.g. I-JEPA's in two archs)."""
    weights = [w for e in catalogues.models() if e.family in ("torchvision", "timm") for w in e.weights]
    pairs = {(w.url, w.file_name) for w in weights}
    assert len(pairs) == len({url for url, _ in pairs}) == len({name for _, name in pairs})
    assert len(pairs) > 0.99 * len(weights)


def test_a_sample_of_timm_parameter_counts_matches_a_fresh_count():
    from zoo_plugins.timm_catalogue import count_params_on_meta

    timm_entries = entries("timm")
    for entry in random.Random(1).sample(timm_entries, 6):
        assert entry.params == count_params_on_meta(entry.name), entry.name
    in22k = next(w for e in timm_entries for w in e.weights if w.num_classes == 21843)
    assert in22k.params == count_params_on_meta(in22k.builder_kwargs["model_name"])


def shipped_copy(tmp_path: Path, family: str, version: str, keep: int | None = None) -> Path:
    """The shipped index of `family` as if generated from another library `version` (first `keep` rows)."""
    data = read_index(catalogue.shipped_index(family))
    data["version"] = version
    if keep is not None:
        data["models"] = data["models"][:keep]
    path = tmp_path / f"{family}-{version}.json"
    path.write_text(json.dumps(data))
    return path


def test_another_installed_version_builds_the_catalogue_from_it_once(tmp_path, capsys):
    """The real rebuild: the installed timm read again (counts of models the copy knows carried over)."""
    import timm
    from zoo_plugins.timm_models import _rows_from_installed

    shipped = shipped_copy(tmp_path, "timm", "0.0.1")
    built = catalogue.family_entries("timm", "timm", _rows_from_installed, shipped=shipped)
    message = capsys.readouterr().err
    assert f"timm {timm.__version__} is installed, the shipped timm catalogue is for timm 0.0.1" in message
    assert f"timm catalogue: {len(timm.list_models())} models, {len(timm.list_models(pretrained=True))}" in message
    assert [e.name for e in built] == timm.list_models()
    assert built == catalogue.family_entries("timm", "timm", _rows_from_installed)  # = the shipped catalogue

    def must_not_build(rows):
        raise AssertionError("built again")

    again = catalogue.family_entries("timm", "timm", must_not_build, shipped=shipped)
    assert again == built and capsys.readouterr().err == ""  # read from ZOO_HOME, silently


def test_a_rebuild_sees_new_models_and_a_failed_one_keeps_the_shipped_catalogue(tmp_path, capsys):
    shipped = shipped_copy(tmp_path, "torchvision", "0.0.2", keep=3)  # "an older torchvision with three models"
    names = [e.name for e in catalogue.family_entries("torchvision", "torchvision", lambda rows: [], shipped=shipped)]
    assert names == [] and "torchvision catalogue: 0 models" in capsys.readouterr().err

    def broken(rows):
        raise KeyError("_metrics")

    shipped = shipped_copy(tmp_path, "torchvision", "0.0.3", keep=3)
    kept = catalogue.family_entries("torchvision", "torchvision", broken, shipped=shipped)
    assert [e.name for e in kept] == [row["name"] for row in read_index(shipped)["models"]]
    err = capsys.readouterr().err
    assert "could not build the torchvision catalogue" in err and "KeyError" in err and "shipped one" in err
    assert not catalogue.rebuilt_index_path("torchvision", installed_version("torchvision"), "0.0.3").exists()


SAMPLE = {  # per task: a model whose random-weight build is quick, and the input it takes
    "classification": "torchvision:mobilenet_v3_small",
    "quantized": "torchvision:quantized_mobilenet_v3_large",
    "detection": "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn",
    "segmentation": "torchvision:lraspp_mobilenet_v3_large",
    "video": "torchvision:r3d_18",
    "optical_flow": "torchvision:raft_small",
    "timm": "timm:vit_tiny_patch16_224.augreg_in21k",
}


@pytest.mark.parametrize("kind", sorted(SAMPLE))
def test_create_model_builds_every_task_with_random_weights_and_no_download(kind, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = Path(torch.hub.get_dir())
    selection = zoo.resolve(SAMPLE[kind])
    model = zoo.create_model(SAMPLE[kind]).eval()
    assert not hub.exists() or not any(hub.rglob("*.pth")), "a builder downloaded weights"
    size = selection.weights.input_size
    with torch.no_grad():
        if selection.entry.task == "detection":
            (out,) = model([torch.rand(size)])
            assert set(out) >= {"boxes", "labels", "scores"}
        elif selection.entry.task == "optical_flow":  # a frame pair; smaller than recorded, to keep the test quick
            small = (3, 128, 160)
            flows = model(torch.rand(1, *small), torch.rand(1, *small), num_flow_updates=2)
            assert flows[-1].shape == (1, 2, *small[1:]) and size[1] % 8 == size[2] % 8 == 0
        else:
            out = model(torch.rand(1, *size))
            out = out["out"] if isinstance(out, dict) else out
            assert out.shape[:2] == (1, selection.weights.num_classes)
    if kind != "quantized":  # a quantized model packs its weights: no parameters left to count
        expected = selection.weights.params if kind == "timm" else selection.entry.params
        assert sum(p.numel() for p in model.parameters()) == expected


def test_weights_trained_at_another_size_build_the_model_at_that_size():
    """torchvision builds its SWAG ViTs at the weights' size; so does zoo, from the registry; `--arg` still wins."""
    import torch

    with torch.device("meta"):
        assert zoo.create_model("vit_b_16").image_size == 224
        assert zoo.create_model("vit_b_16.swag_e2e_in1k").image_size == 384
        assert zoo.create_model("vit_h_14.swag_e2e_in1k").image_size == 518
        assert zoo.create_model("vit_b_16.swag_e2e_in1k", image_size=224).image_size == 224
        assert zoo.create_model("vit_b_16.swag_linear_in1k").image_size == 224
        head = zoo.create_model("timm:vit_base_patch16_224.augreg_in21k").get_classifier()
        assert head.out_features == zoo.resolve("timm:vit_base_patch16_224.augreg_in21k").weights.num_classes
        assert zoo.create_model("fcn_resnet50.coco_with_voc_labels_v1").aux_classifier is not None


@pytest.mark.slow
def test_full_regeneration_counts_every_parameter_again(generator, tmp_path):
    rows = generator.family_rows("timm", reuse_params=False)
    expected = generator.index_text("timm", rows, tmp_path / "timm.json")
    assert catalogue.shipped_index("timm").read_text() == expected


@pytest.mark.slow
def test_every_torchvision_model_builds_with_random_weights_and_its_parameter_count(tmp_path, monkeypatch):
    import torch

    for entry in entries("torchvision"):
        quantized = "quantized" in entry.tags
        device = "cpu" if entry.name.startswith("regnet") else "meta"  # RegNets compute widths with tensors
        if device == "cpu" and entry.params > 2e8:
            continue  # regnet_y_128gf: 2.6 GB of random weights for a count torchvision itself publishes
        with torch.device(device):
            model = zoo.create_model(entry.qualified_name, **({"quantize": False} if quantized else {}))
        # built for the default weight set: as builder() builds it, unless those weights need more (an FCN's
        # auxiliary head, a ViT at 518 pixels), when it is as torchvision counts those weights
        default = entry.default_weights
        expected = default.params if default.builder_kwargs else entry.params
        assert sum(p.numel() for p in model.parameters()) == expected, entry.name
    assert not any(Path(torch.hub.get_dir()).rglob("*.pth"))


@pytest.mark.slow
def test_every_timm_architecture_builds_on_meta_with_its_parameter_count():
    import torch

    for entry in entries("timm"):
        with torch.device("meta"):
            model = zoo.create_model(entry.qualified_name)
        params = entry.default_weights.params if entry.weights else entry.params
        assert sum(p.numel() for p in model.parameters()) == params, entry.name


def test_registry_data_is_packaged():
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "data/*.json" in data["zoo_plugins"]
    assert {p.name for p in (ROOT / "plugins" / "data").glob("*.json")} == {"torchvision.json", "timm.json"}
