"""Generate registry.toml from the installed torchvision and timm metadata.

    python scripts/generate_registry.py            # rewrite registry.toml
    python scripts/generate_registry.py --check    # exit 1 if registry.toml is out of date

Every torchvision classification model with its official weight sets, and the timm pretrained tags of
the architectures users reach for most (TIMM_ARCHITECTURES). tests/test_registry_catalogue.py checks
that the committed file agrees with the installed libraries.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REGISTRY = Path(__file__).resolve().parents[1] / "registry.toml"

# torchvision weight enum names -> timm-style tags (the enum names stay as aliases)
TORCHVISION_TAGS = {
    "IMAGENET1K_V1": "tv_in1k",
    "IMAGENET1K_V2": "tv2_in1k",
    "IMAGENET1K_SWAG_E2E_V1": "swag_e2e_in1k",
    "IMAGENET1K_SWAG_LINEAR_V1": "swag_linear_in1k",
}
TORCHVISION_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageClassification's defaults

TIMM_ARCHITECTURES = (
    # resnet
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50d",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    # efficientnet
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "tf_efficientnet_b0",
    "tf_efficientnet_b1",
    "tf_efficientnet_b2",
    "tf_efficientnet_b3",
    "tf_efficientnet_lite0",
    "tf_efficientnetv2_s",
    # mobilenetv3
    "mobilenetv3_large_100",
    "mobilenetv3_small_100",
    "mobilenetv3_small_075",
    "tf_mobilenetv3_large_100",
    # convnext
    "convnext_atto",
    "convnext_nano",
    "convnext_tiny",
    "convnext_small",
    "convnext_base",
    # vit
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "vit_base_patch16_224",
    "vit_base_patch32_224",
    "vit_large_patch16_224",
    # regnet
    "regnetx_002",
    "regnetx_004",
    "regnety_002",
    "regnety_004",
    "regnety_008",
    "regnety_016",
    "regnety_032",
)


def torchvision_models() -> list[dict]:
    import torchvision.models as tvm

    models = []
    for name in tvm.list_models(module=tvm):
        enum = tvm.get_model_weights(name)
        weights = [_torchvision_weights(member) for member in _default_first(enum)]
        models.append(
            {
                "name": name,
                "family": "torchvision",
                "builder": f"torchvision.models:{name}",
                "tags": ["classification"],
                "weights": weights,
            }
        )
    return models


def _default_first(enum) -> list:
    members = list(enum)
    default = enum.DEFAULT
    return [default] + [m for m in members if m is not default]


def _torchvision_weights(member) -> dict:
    meta, transform = member.meta, member.transforms.keywords
    crop = transform["crop_size"]
    metrics = meta["_metrics"]["ImageNet-1K"]
    interpolation = transform.get("interpolation")
    entry = {
        "tag": TORCHVISION_TAGS.get(member.name, member.name.lower()),
        "aliases": [member.name],
        "url": member.url,
        "format": "pth",
        "num_classes": len(meta["categories"]) if meta["categories"] else None,
        "input_size": [3, crop, crop],
        "mean": list(TORCHVISION_MEAN_STD[0]),
        "std": list(TORCHVISION_MEAN_STD[1]),
        "interpolation": interpolation.value if interpolation is not None else "bilinear",
        "top1": None if math.isnan(metrics["acc@1"]) else metrics["acc@1"],
        "top5": None if math.isnan(metrics["acc@5"]) else metrics["acc@5"],
        "params": meta["num_params"],
        "gmacs": meta["_ops"],
        "file_size_mb": meta["_file_size"],
        "meta": {"recipe": meta["recipe"], "resize_size": transform.get("resize_size", 256)},
        "builder_kwargs": _torchvision_builder_kwargs(member),
    }
    if meta.get("license"):
        entry["license"] = meta["license"]
    return {k: v for k, v in entry.items() if v is not None}


def _torchvision_builder_kwargs(member) -> dict | None:
    """What torchvision's builder sets from these weights: ViTs are built at the weights' `min_size`."""
    size = member.meta.get("min_size", (224, 224))[0]
    if "vision_transformer" in type(member).__module__ and size != 224:
        return {"image_size": size}
    return None


def timm_models() -> list[dict]:
    import timm.models._registry as registry
    from timm.models import get_pretrained_cfg

    models = []
    for arch in TIMM_ARCHITECTURES:
        default_cfg = registry._model_default_cfgs[arch]
        weights = []
        for tag in default_cfg.tags:
            cfg = get_pretrained_cfg(f"{arch}.{tag}")  # completes hf_hub_id ("timm/" + arch.tag)
            if not cfg.hf_hub_id:
                continue
            weights.append(_timm_weights(arch, tag, cfg))
        models.append(
            {
                "name": arch,
                "family": "timm",
                "builder": "timm:create_model",
                "builder_kwargs": {"model_name": arch},
                "tags": ["classification"],
                "weights": weights,
            }
        )
    return models


def _timm_weights(arch: str, tag: str, cfg) -> dict:
    entry = {
        "tag": tag,
        "url": f"https://huggingface.co/{cfg.hf_hub_id}/resolve/main/model.safetensors",
        "file_name": f"{arch}.{tag}.safetensors",
        "format": "safetensors",
        "num_classes": cfg.num_classes or None,
        "input_size": list(cfg.input_size),
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "interpolation": cfg.interpolation,
        "meta": {"crop_pct": cfg.crop_pct, "hf_hub_id": cfg.hf_hub_id},
    }
    if cfg.license:
        entry["license"] = cfg.license
    return {k: v for k, v in entry.items() if v is not None}


def catalogue() -> dict:
    """The registry data generated from the installed libraries, as registry.toml holds it."""
    import timm
    import torchvision

    return {
        "format": 1,
        "generator": {
            "script": "scripts/generate_registry.py",
            "torchvision": torchvision.__version__.split("+")[0],
            "timm": timm.__version__,
        },
        "models": torchvision_models() + timm_models(),
    }


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict) -> str:
    lines = [
        "# zoo model registry: generated by scripts/generate_registry.py from the installed torchvision and timm",
        "# metadata. Do not edit by hand; the format is documented in docs/registry-format.md.",
        f"format = {data['format']}",
        "",
        "[generator]",
        *(f"{k} = {_value(v)}" for k, v in data["generator"].items()),
    ]
    for model in data["models"]:
        lines += ["", "[[models]]"]
        lines += [f"{k} = {_value(v)}" for k, v in model.items() if k != "weights"]
        for weights in model["weights"]:
            lines += ["", "[[models.weights]]"]
            lines += [f"{k} = {_value(v)}" for k, v in weights.items()]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if registry.toml is out of date")
    args = parser.parse_args()
    text = to_toml(catalogue())
    if args.check:
        current = REGISTRY.read_text(encoding="utf-8") if REGISTRY.exists() else ""
        if current != text:
            print(f"{REGISTRY} is out of date: run python scripts/generate_registry.py", file=sys.stderr)
            return 1
        return 0
    tmp = REGISTRY.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(REGISTRY)
    print(f"wrote {REGISTRY}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
