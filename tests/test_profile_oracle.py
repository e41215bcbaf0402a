"""zoo's MACs and parameter counts against torchvision's published tables, for every weight set they cover.

torchvision's docs list "GFLOPS" that are in fact GMACs (`_ops` in the weights' meta, copied into
registry.toml as `gmacs`) and `num_params`. zoo must agree within 1% (or the table's own rounding to
three decimals) and exactly on parameters, counting on the meta device with random-init models.
"""

from __future__ import annotations

import pytest

from zoo.profiling import profile
from zoo.registry import catalogues

# Heavy models (hundreds of millions of parameters, or slow to build): run with the slow marker.
SLOW = (
    "vit_h_14",
    "vit_l_16",
    "vit_l_32",
    "regnet_y_128gf",
    "regnet_y_32gf",
    "regnet_x_32gf",
    "regnet_y_16gf",
    "regnet_x_16gf",
    "swin_v2_b",
    "swin_v2_s",
    "swin_b",
    "swin_s",
    "efficientnet_b7",
    "efficientnet_v2_l",
)

# Builder arguments that give the architecture the published weights were trained with.
BUILD_ARGS = {"googlenet": {"aux_logits": False}}


# Where torchvision's figure cannot be reproduced from a random-weight forward pass, and why:
NOT_COMPARABLE = {
    "quantized": "zoo has no MAC formulas for quantized:: ops (it lists them as not counted)",
    "optical_flow": "RAFT's published figure follows another convention (zoo counts about 2x)",
    "two-stage detection": "an R-CNN's second stage runs on as many proposals as survive NMS: data-dependent",
    "frozen BatchNorm": "trained, fcos_resnet50_fpn and retinanet_resnet50_fpn use FrozenBatchNorm2d, whose affine "
    "tensors are buffers (torchvision's count is 53,120 lower than the random-weight build's)",
}
FROZEN_BATCHNORM = {"fcos_resnet50_fpn", "retinanet_resnet50_fpn"}
# Ops that do no multiply-accumulates a table would count (box selection), allowed uncounted in detectors.
SELECTION_OPS = {"torchvision::nms", "aten::_unique2", "torchvision::roi_align"}


def _comparable(entry) -> bool:
    if "quantized" in entry.tags or entry.task == "optical_flow":
        return False
    return not (entry.task == "detection" and "rcnn" in entry.name) and entry.name not in FROZEN_BATCHNORM


def _weight_sets():
    catalogues.reset()
    seen = set()
    for entry in catalogues.models().select([], [], "torchvision", False):
        if not _comparable(entry):
            continue
        for weights in entry.weights:
            key = (entry.name, weights.input_size, weights.params, weights.gmacs)
            if weights.gmacs is None or weights.params is None or key in seen:
                continue
            seen.add(key)
            marks = [pytest.mark.slow] if entry.name in SLOW else []
            yield pytest.param(entry.name, weights.tag, id=f"{entry.name}.{weights.tag}", marks=marks)
    catalogues.reset()


CASES = list(_weight_sets())


def test_the_walk_covers_the_table():
    names = {case.values[0] for case in CASES}
    fast = [case for case in CASES if not case.marks]
    assert len(CASES) >= 80 and len(names) >= 70
    assert len(fast) >= 20
    assert {"vit_b_16", "swin_t", "convnext_tiny", "resnet18"} <= {case.values[0] for case in fast}


@pytest.mark.parametrize(("name", "tag"), CASES)
def test_macs_and_params_match_torchvision(name, tag):
    selection = catalogues.models().resolve(f"{name}.{tag}")
    weights = selection.weights
    result = profile(f"{name}.{tag}", kwargs=dict(BUILD_ARGS.get(name, {})))  # SWAG ViTs: the registry sizes them
    assert result.input_shape == (1, *weights.input_size)
    assert result.params.total == weights.params
    assert abs(result.gmacs - weights.gmacs) <= max(0.01 * weights.gmacs, 0.0005), (result.gmacs, weights.gmacs)
    if selection.entry.task == "classification":
        assert not result.count.uncounted
        assert result.count.output_shape == (1, weights.num_classes)
    else:
        assert set(result.count.uncounted) <= SELECTION_OPS
