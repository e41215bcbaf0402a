"""The torchvision catalogue, read from the installed torchvision: every model and weight set, by task.

Used by scripts/generate_registry.py for the shipped catalogue, and by zoo itself when the installed
torchvision is not the one the shipped catalogue came from. Imports torch: never imported by `zoo list`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

FAMILY = "torchvision"
TAGS = {  # torchvision weight enum names -> timm-style tags (the enum names stay as aliases)
    "IMAGENET1K_V1": "tv_in1k",
    "IMAGENET1K_V2": "tv2_in1k",
    "IMAGENET1K_SWAG_E2E_V1": "swag_e2e_in1k",
    "IMAGENET1K_SWAG_LINEAR_V1": "swag_linear_in1k",
}
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageClassification's defaults
KINETICS_MEAN_STD = ((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989))  # VideoClassification's
SUBPACKAGE_TASKS = {  # torchvision.models.<subpackage> -> (task, extra tags)
    "detection": ("detection", ()),
    "segmentation": ("segmentation", ()),
    "video": ("video", ()),
    "optical_flow": ("optical_flow", ()),
    "quantization": ("classification", ("quantized",)),
}
CLIP_FRAMES = 16  # the clip length torchvision's video models are trained and evaluated on (its references)
FLOW_SIZE = (520, 960)  # the frame size torchvision's RAFT example resizes to (gallery: plot_optical_flow)

# torchvision's download URLs before multi-weight support (0.13): the `model_urls` of every release wheel
# from 0.2.2.post3 to 0.12.0 (torchvision/models/**.py, read with ast), each URL that is no longer the URL
# of a weight set. Each was what `model(pretrained=True)` downloaded in those releases, the weights that
# 0.13+ maps `pretrained=True` to (the enum member here): the same weights, saved to another file, whose
# name carries its own sha256 prefix. (model, weight enum member, releases that used the URL)
LEGACY_FILES: dict[str, tuple[str, str, str]] = {
    "https://download.pytorch.org/models/alexnet-owt-4df8aa71.pth": ("alexnet", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/efficientnet_b0_rwightman-3dd342df.pth": (
        "efficientnet_b0",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b1_rwightman-533bc792.pth": (
        "efficientnet_b1",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b2_rwightman-bcdf34b7.pth": (
        "efficientnet_b2",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b3_rwightman-cf984f9c.pth": (
        "efficientnet_b3",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b4_rwightman-7eb33cd5.pth": (
        "efficientnet_b4",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b5_lukemelas-b6417697.pth": (
        "efficientnet_b5",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b6_lukemelas-c76e70fd.pth": (
        "efficientnet_b6",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/efficientnet_b7_lukemelas-dcc49843.pth": (
        "efficientnet_b7",
        "IMAGENET1K_V1",
        "0.11.3-0.12.0",
    ),
    "https://download.pytorch.org/models/inception_v3_google-1a9a5a14.pth": (
        "inception_v3",
        "IMAGENET1K_V1",
        "0.2.2-0.9.1",
    ),
    "https://download.pytorch.org/models/quantized/googlenet_fbgemm-c00238cf.pth": (
        "quantized_googlenet",
        "IMAGENET1K_FBGEMM_V1",
        "0.5.0-0.12.0",
    ),
    "https://download.pytorch.org/models/quantized/inception_v3_google_fbgemm-71447a44.pth": (
        "quantized_inception_v3",
        "IMAGENET1K_FBGEMM_V1",
        "0.6.1-0.12.0",
    ),
    "https://download.pytorch.org/models/quantized/shufflenetv2_x1_fbgemm-db332c57.pth": (
        "quantized_shufflenet_v2_x1_0",
        "IMAGENET1K_FBGEMM_V1",
        "0.5.0-0.12.0",
    ),
    "https://download.pytorch.org/models/resnet101-5d3b4d8f.pth": ("resnet101", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/resnet152-b121ed2d.pth": ("resnet152", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/resnet18-5c106cde.pth": ("resnet18", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/resnet34-333f7ec4.pth": ("resnet34", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/resnet50-19c8e357.pth": ("resnet50", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/squeezenet1_0-a815701f.pth": ("squeezenet1_0", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/squeezenet1_1-f364aa15.pth": ("squeezenet1_1", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/vgg11-bbd30ac9.pth": ("vgg11", "IMAGENET1K_V1", "0.2.2-0.9.1"),
    "https://download.pytorch.org/models/vgg13-c768596a.pth": ("vgg13", "IMAGENET1K_V1", "0.2.2-0.9.1"),
}
# Left out, on purpose: mnasnet0.5_top1_67.592-7c6cb539b9.pth (0.4.2 only; 0.5.0 replaced it by other
# weights, top-1 67.823, so it is no file of today's weight set), quantized/inception_v3_google_fbgemm-
# 4f6e4894.pth (0.5.0 only, replaced in 0.6.1: the same weights cannot be confirmed), and
# vgg16_features-amdegroot.pth (an SSD backbone, no weight set of a model, and no hash in its name).


def catalogue_rows(names: list[str] | None = None) -> list[dict]:
    """One row per torchvision model (registry-file fields), its weight sets default first (only `names`'s)."""
    import torchvision.models as tvm

    legacy: dict[tuple[str, str], list[str]] = {}
    for url, (model, member, _) in LEGACY_FILES.items():
        legacy.setdefault((model, member), []).append(url)
    rows = []
    for name in names if names is not None else tvm.list_models():
        builder = tvm.get_model_builder(name)
        task, extra_tags = task_of(builder)
        model = build_on_meta(builder)
        enum = tvm.get_model_weights(name)
        weights = [
            _weights(member, task, model, legacy.get((name, member.name), [])) for member in _default_first(enum)
        ]
        # built as `builder()` builds it; where that cannot run on meta, the default weights' own count
        params = sum(p.numel() for p in model.parameters()) if model is not None else enum.DEFAULT.meta["num_params"]
        row = {
            "name": name,
            "family": FAMILY,
            "builder": builder_reference(name, builder),
            "builder_kwargs": {"quantize": True} if "quantized" in extra_tags else None,
            "tags": [task, *extra_tags],
            "task": task,
            "params": params,
            "weights": weights,
        }
        rows.append(_drop_none(row))
    return rows


def task_of(builder) -> tuple[str, tuple[str, ...]]:
    """(task, extra tags) from the torchvision.models subpackage that defines `builder`."""
    parts = builder.__module__.split(".")
    sub = parts[2] if len(parts) > 3 else ""
    return SUBPACKAGE_TASKS.get(sub, ("classification", ()))


def builder_reference(name: str, builder) -> str:
    """`torchvision.models:resnet50`, or the subpackage for the others (`torchvision.models.detection:...`)."""
    import torchvision.models as tvm

    if getattr(tvm, name, None) is builder:
        return f"torchvision.models:{name}"
    module = ".".join(builder.__module__.split(".")[:3])
    return f"{module}:{builder.__name__}"


def random_weights_kwargs(builder) -> dict[str, Any]:
    """What a builder needs to download nothing: `weights=None`, and `weights_backbone=None` where it has one."""
    kwargs: dict[str, Any] = {"weights": None}
    if "weights_backbone" in inspect.signature(builder).parameters:
        kwargs["weights_backbone"] = None
    return kwargs


def build_on_meta(builder):
    """The model on the meta device (quantized ones as their float counterparts); None if it cannot be.

    RegNets compute their widths with tensors, which meta tensors cannot give back.
    """
    import torch

    try:
        with torch.device("meta"):
            return builder(**random_weights_kwargs(builder))
    except NotImplementedError:
        return None


def _default_first(enum) -> list:
    default = enum.DEFAULT
    return [default] + [m for m in enum if m is not default]


def _weights(member, task: str, model, legacy_urls: list[str]) -> dict:
    meta = member.meta
    keywords: Mapping[str, Any] = getattr(member.transforms, "keywords", {})
    metrics = meta.get("_metrics", {})
    imagenet = metrics.get("ImageNet-1K", {})
    interpolation = keywords.get("interpolation")
    mean, std = _mean_std(task, keywords)
    entry = {
        "tag": TAGS.get(member.name, member.name.lower()),
        "aliases": [member.name],
        "url": member.url,
        "legacy_urls": legacy_urls or None,
        "format": "pth",
        "num_classes": len(meta["categories"]) if meta.get("categories") else None,
        "input_size": input_size(task, keywords, meta, model),
        "mean": mean,
        "std": std,
        "interpolation": interpolation.value if interpolation is not None else "bilinear",
        "license": meta.get("license"),
        "top1": _number(imagenet.get("acc@1")),
        "top5": _number(imagenet.get("acc@5")),
        "params": meta["num_params"],
        "gmacs": meta.get("_ops"),
        "file_size_mb": meta.get("_file_size"),
        "meta": _drop_none(
            {
                "recipe": meta.get("recipe"),
                "resize_size": _first(keywords.get("resize_size", 256 if task == "classification" else None)),
                "metrics": {k: v for k, v in metrics.items() if k != "ImageNet-1K"} or None,
                "backend": meta.get("backend"),
            }
        ),
        "builder_kwargs": weights_builder_kwargs(member, task) or None,
    }
    return _drop_none(entry)


def input_size(task: str, keywords: Mapping[str, Any], meta: Mapping[str, Any], model) -> list[int]:
    """The input a weight set is evaluated at: (3, H, W), a video clip's (3, T, H, W).

    Detection: a square image of the size the model's own transform resizes the short side to;
    segmentation: the transform's resize size; optical flow: FLOW_SIZE (each of the two frames).
    """
    if task == "detection":
        side = model.transform.min_size[0]
        return [3, side, side]
    if task == "optical_flow":
        return [3, *FLOW_SIZE]
    if task == "segmentation":
        side = _first(keywords["resize_size"])
        return [3, side, side]
    crop = keywords["crop_size"]
    height, width = (crop, crop) if isinstance(crop, int) else crop
    if task == "video":
        return [3, max(CLIP_FRAMES, meta.get("min_temporal_size", 1)), height, width]
    return [3, height, width]


def weights_builder_kwargs(member, task: str) -> dict[str, Any]:
    """What torchvision's builder sets from these weights, so that the model built for them loads them.

    ViTs are built at the weights' `min_size`; FCN and DeepLabV3 weights carry the auxiliary classifier.
    """
    kwargs: dict[str, Any] = {}
    size = member.meta.get("min_size", (224, 224))[0]
    if "vision_transformer" in type(member).__module__ and size != 224:
        kwargs["image_size"] = size
    if task == "segmentation" and type(member).__module__.rsplit(".", 1)[-1] in ("fcn", "deeplabv3"):
        kwargs["aux_loss"] = True
    return kwargs


def _mean_std(task: str, keywords: Mapping[str, Any]) -> tuple[list | None, list | None]:
    if task == "detection":
        return None, None  # the model normalises inside (GeneralizedRCNNTransform / SSD's transform)
    if task == "optical_flow":
        return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]  # OpticalFlow maps [0, 1] to [-1, 1]
    default = KINETICS_MEAN_STD if task == "video" else IMAGENET_MEAN_STD
    return list(keywords.get("mean", default[0])), list(keywords.get("std", default[1]))


def _first(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _number(value) -> float | None:
    return None if value is None or math.isnan(value) else value


def _drop_none(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if v is not None}
