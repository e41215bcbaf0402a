"""Built-in plugin: architectures for `zoo adapt` (ResNetBackbone, SSD-style VGG, a generic feature backbone).

They keep torchvision's key names, so pretrained classifiers feed them by exact name (ResNetBackbone) or
by prefix (`features.N` -> `vgg.N`). Each declares `zoo_verify_pairs()` so `zoo adapt --verify` knows
which source stage each feature map must equal. torch is imported only when one is built.
"""

from __future__ import annotations

import re
from typing import Any

from zoo import Architecture, hookimpl
from zoo.errors import UserInputError

RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


@hookimpl
def register_architectures(register) -> None:
    register(
        Architecture(
            "ResNetBackbone",
            resnet_backbone,
            "torchvision ResNet 18-152 without pool/fc, returning C2-C5 (out_indices 0-3)",
        )
    )
    register(Architecture("SSDVGG", ssd_vgg, "SSD's VGG-16 base: `vgg` ModuleList, ceil-mode pool, conv6/conv7"))
    register(
        Architecture(
            "FeatureBackbone",
            feature_backbone,
            "stage feature maps of any torchvision/timm classifier (--arg model=NAME out_indices=...)",
        )
    )


def _out_indices(value: Any, count: int) -> tuple[int, ...]:
    indices = (value,) if isinstance(value, int) else tuple(value)
    bad = [i for i in indices if not isinstance(i, int) or not -count <= i < count]
    if bad or not indices or len(set(i % count for i in indices)) != len(indices):
        raise UserInputError(f"out_indices {value!r}: give distinct stage indices in 0..{count - 1}")
    return tuple(sorted(i % count for i in indices))


def resnet_backbone(depth: int = 50, out_indices: Any = (0, 1, 2, 3), in_chans: int = 3):
    """A torchvision-named ResNet trunk returning the C2-C5 maps selected by `out_indices`."""
    from zoo_plugins._resnet import ResNetBackbone

    if depth not in RESNET_LAYOUTS:
        raise UserInputError(f"ResNetBackbone depth {depth!r}: choose one of {', '.join(map(str, RESNET_LAYOUTS))}")
    block, layers = RESNET_LAYOUTS[depth]
    return ResNetBackbone(block, layers, _out_indices(out_indices, 4), in_chans)


def _infer_resnet(source_name: str, state_dict: dict) -> dict[str, Any]:
    """`--from resnet50` gives depth 50; a bare checkpoint gives it through its block counts."""
    match = re.search(r"(?:^|[:/_])resnet(\d+)", source_name)
    if match and int(match.group(1)) in RESNET_LAYOUTS:
        return {"depth": int(match.group(1))}
    counts = tuple(len({k.split(".")[1] for k in state_dict if k.startswith(f"layer{i}.")}) for i in range(1, 5))
    bottleneck = "layer1.0.conv3.weight" in state_dict
    for depth, (block, layers) in RESNET_LAYOUTS.items():
        if layers == counts and (block == "bottleneck") == bottleneck:
            return {"depth": depth}
    return {}


resnet_backbone.infer_kwargs = _infer_resnet  # type: ignore[attr-defined]


def ssd_vgg(in_chans: int = 3):
    """SSD300's VGG-16 base (`vgg.0`..`vgg.34`): conv4_3 and conv7 maps; conv6/conv7 start xavier-initialised."""
    from zoo_plugins._vgg import SSDVGG

    return SSDVGG(in_chans)


def feature_backbone(model: str = "resnet50", out_indices: Any = None, **kwargs: Any):
    """Stage outputs of a registry classifier: torchvision through FX feature extraction, timm features_only.

    `out_indices` follow each library: for a timm model, timm's feature indices (0 is the stem, so a
    ResNet's layer1-4 are 1-4); for a torchvision model, positions in its stages (layer1-4 are 0-3, as in
    ResNetBackbone; otherwise each block of `features`). The default is the last four stages.
    """
    from zoo_plugins._features import build_feature_backbone

    return build_feature_backbone(model, out_indices, **kwargs)
