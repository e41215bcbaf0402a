"""Weights loaded for export go into a meta-device build (zoo.exporting.source): across the torchvision
catalogue and a sample of timm's, the model that comes out holds exactly the file's tensors, in the model's
own dtypes, with every buffer a real build computes, and nothing left on the meta device."""

from __future__ import annotations

import pytest
import torch

from zoo.exporting.source import load_source
from zoo.registry import catalogues
from zoo.targets import build_target

# One of each kind of build: quantized modules (packed parameters), buffers made in __init__ (swin's
# relative position index), widths computed with tensors (regnet), a detector (FrozenBatchNorm buffers),
# two-image optical flow.
SAMPLE = ("quantized_resnet18", "swin_t", "regnet_x_400mf", "ssdlite320_mobilenet_v3_large", "raft_small")
# timm: window attention masks and relative position buffers (swin), a class token (vit), layer scale (convnext).
TIMM_SAMPLE = ("swin_tiny_patch4_window7_224", "vit_tiny_patch16_224", "convnext_atto")


def torchvision_names() -> list[str]:
    return sorted(e.name for e in catalogues.models() if e.family == "torchvision")


def same(a, b) -> bool:
    """Equal values and dtypes, for tensors (quantized ones too) and the tuples packed parameters save as."""
    if isinstance(a, tuple | list):
        return isinstance(b, tuple | list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if not isinstance(a, torch.Tensor):
        return a == b
    if not isinstance(b, torch.Tensor) or a.dtype != b.dtype or a.shape != b.shape or a.is_meta or b.is_meta:
        return False
    if a.is_quantized:
        return torch.equal(a.int_repr(), b.int_repr()) and torch.equal(a.dequantize(), b.dequantize())
    return torch.equal(a, b)


def check_loads_exactly(spec: str, tmp_path) -> None:
    name = spec.partition(":")[2]
    torch.manual_seed(0)
    real = build_target(spec).model
    saved = real.state_dict()
    path = tmp_path / f"{name}.pth"
    torch.save(saved, path)
    model = load_source(spec, str(path), None).model
    loaded = model.state_dict()
    assert list(loaded) == list(saved)
    wrong = [key for key, value in saved.items() if not same(loaded[key], value)]
    assert not wrong, f"{len(wrong)} tensors differ, e.g. {wrong[:3]}"
    buffers = dict(real.named_buffers())  # non-persistent ones too: what the builder computed
    assert {k: same(v, buffers[k]) for k, v in model.named_buffers()} == dict.fromkeys(buffers, True)
    assert not any(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("name", SAMPLE)
def test_a_sample_of_the_catalogue_loads_exactly_into_a_meta_build(name, tmp_path):
    check_loads_exactly(f"torchvision:{name}", tmp_path)


@pytest.mark.parametrize("name", TIMM_SAMPLE)
def test_a_sample_of_timm_loads_exactly_into_a_meta_build(name, tmp_path):
    check_loads_exactly(f"timm:{name}", tmp_path)


def test_the_samples_are_in_the_catalogue():
    assert set(SAMPLE) <= set(torchvision_names())
    assert {f"timm:{name}" for name in TIMM_SAMPLE} <= {e.qualified_name for e in catalogues.models()}


@pytest.mark.slow
@pytest.mark.parametrize("name", torchvision_names())
def test_every_torchvision_model_loads_exactly_into_a_meta_build(name, tmp_path):
    check_loads_exactly(f"torchvision:{name}", tmp_path)
