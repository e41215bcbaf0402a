"""registry.toml agrees with the installed torchvision and timm (regenerate with scripts/generate_registry.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import zoo

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_registry", ROOT / "scripts" / "generate_registry.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registry_file_is_what_the_installed_libraries_generate():
    generator = load_generator()
    expected = generator.to_toml(generator.catalogue())
    assert (ROOT / "registry.toml").read_text() == expected, "run: python scripts/generate_registry.py"


def test_every_torchvision_classification_model_and_weight_set_is_registered():
    import torchvision.models as tvm

    for name in tvm.list_models(module=tvm):
        entry = zoo.get_entry(f"torchvision:{name}")
        enum = tvm.get_model_weights(name)
        assert entry.default_weights.url == enum.DEFAULT.url
        for member in enum:
            weights = entry.weight_set(member.name)
            assert weights is not None and weights.url == member.url
            assert weights.hash_prefix == member.url.rsplit("-", 1)[1].split(".")[0]
            assert weights.params == member.meta["num_params"] and weights.gmacs == member.meta["_ops"]


def test_timm_families_users_reach_for_are_there():
    for pattern in (
        "timm:resnet*",
        "timm:*efficientnet*",
        "timm:mobilenetv3*",
        "timm:convnext*",
        "timm:vit_*",
        "timm:regnet*",
    ):
        assert zoo.list_models(pattern, pretrained=True), pattern


def test_every_weight_set_has_its_own_url_and_cache_file():
    weights = [(entry, w) for name in zoo.list_models() for entry in [zoo.get_entry(name)] for w in entry.weights]
    urls = [w.url for _, w in weights]
    files = [w.file_name for _, w in weights]
    assert len(set(urls)) == len(urls) and len(set(files)) == len(files)
    for entry, w in weights:
        if entry.family == "timm":
            assert f"/timm/{entry.name}.{w.tag}/" in w.url, w.url


def test_weights_trained_at_another_size_build_the_model_at_that_size():
    """torchvision builds its SWAG ViTs at the weights' size; so does zoo, from the registry; `--arg` still wins."""
    import torch

    with torch.device("meta"):
        assert zoo.create_model("vit_b_16").image_size == 224
        assert zoo.create_model("vit_b_16.swag_e2e_in1k").image_size == 384
        assert zoo.create_model("vit_h_14.swag_e2e_in1k").image_size == 518
        assert zoo.create_model("vit_b_16.swag_e2e_in1k", image_size=224).image_size == 224
        assert zoo.create_model("vit_b_16.swag_linear_in1k").image_size == 224
