"""Generate the key-and-shape signature index `zoo inspect` identifies checkpoints with.

    python scripts/generate_signatures.py            # rewrite plugins/signatures.json.gz
    python scripts/generate_signatures.py --check    # exit 1 if the committed index is out of date
    python scripts/generate_signatures.py --only timm:resnet50 torchvision:resnet50   # print those records

Every architecture `timm.list_models()` and `torchvision.models.list_models()` names is built on the meta
device (no memory, no weights) and reduced to a compact record (zoo.weights.signatures.signature_of):
hashes of its keys and of its keys with shapes, the same without the classifier, and the classifier's and
first convolution's shapes, so that a checkpoint with another head or another number of input channels is
named as a near miss. tests/test_inspect_index.py checks that the committed index agrees with the installed
libraries.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.weights.signatures import INDEX_PATH, signature_of  # noqa: E402

# Builds other than the defaults that published weights or users' own saves have: torchvision's SWAG ViTs
# at the image sizes their weight sets name, and GoogLeNet/Inception v3 saved without their auxiliary heads
# (what `model.state_dict()` gives after loading torchvision's weights).
VARIANTS = {
    "torchvision:vit_b_16": ({"image_size": 384},),
    "torchvision:vit_l_16": ({"image_size": 512},),
    "torchvision:vit_h_14": ({"image_size": 518},),
    "torchvision:googlenet": ({"aux_logits": False, "init_weights": False},),
    "torchvision:inception_v3": ({"aux_logits": False, "init_weights": False},),
}


OTHER_CLASSES = 7  # no torchvision model has 7 classes by default


def variant_name(qualified: str, kwargs: dict) -> str:
    """`torchvision:vit_b_16[image_size=384]`: an architecture built with other arguments (index key)."""
    shown = {k: v for k, v in kwargs.items() if k != "init_weights"}
    return f"{qualified}[{','.join(f'{k}={v}' for k, v in shown.items())}]"


def architectures() -> list[str]:
    """Every architecture the installed timm and torchvision can build, as `family:name`."""
    import timm
    import torchvision.models as tvm

    return [f"torchvision:{n}" for n in sorted(tvm.list_models())] + [f"timm:{n}" for n in sorted(timm.list_models())]


def builds() -> list[tuple[str, str, dict]]:
    """(index key, architecture, builder arguments) for every architecture and its VARIANTS."""
    result = []
    for name in architectures():
        result.append((name, name, {}))
        result.extend((variant_name(name, kw), name, kw) for kw in VARIANTS.get(name, ()))
    return result


def build_on_meta(qualified: str, kwargs: dict | None = None, device: str = "meta"):
    """The architecture built on the meta device (defaults, or `kwargs`), and its classifier's module names."""
    import inspect

    import torch

    kwargs = dict(kwargs or {})
    family, name = qualified.split(":", 1)
    with warnings.catch_warnings(), torch.device(device), torch.no_grad():
        warnings.simplefilter("ignore")
        if family == "timm":
            import timm

            model = timm.create_model(name, pretrained=False, **kwargs)
            classifier = model.pretrained_cfg.get("classifier") if getattr(model, "num_classes", 1) else None
            if isinstance(classifier, str):
                classifier = (classifier,)
            return model, tuple(classifier) if classifier else None
        import torchvision.models as tvm

        builder = tvm.get_model_builder(name)
        if "weights_backbone" in inspect.signature(builder).parameters:
            kwargs.setdefault("weights_backbone", None)  # its default downloads an ImageNet backbone
        return builder(weights=None, **kwargs), None


def build(qualified: str, kwargs: dict | None = None):
    """build_on_meta, or on the CPU for the few builders that need tensor values (torchvision's regnets compute
    their widths with tensors; the meta device has none)."""
    try:
        return build_on_meta(qualified, kwargs)
    except NotImplementedError:
        return build_on_meta(qualified, kwargs, device="cpu")


def record_for(qualified: str, kwargs: dict | None = None) -> dict:
    model, classifier = build(qualified, kwargs)
    head, classes = (
        head_by_num_classes(qualified, kwargs, model) if qualified.startswith("torchvision:") else (None, None)
    )
    return signature_of(model, classifier, head, classes)


def head_by_num_classes(qualified: str, kwargs: dict | None, model) -> tuple[list[str] | None, int | None]:
    """torchvision names no classifier: its keys are those whose shapes change with `num_classes` (a second build
    with 7 classes), so a detector's box predictor and a segmenter's auxiliary head count too; and the default
    number of classes. (None, None) for builders without `num_classes`."""
    try:
        other, _ = build(qualified, {**(kwargs or {}), "num_classes": OTHER_CLASSES})
    except Exception:  # noqa: BLE001 - a builder that takes no num_classes (optical flow)
        return None, None
    default = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    changed = {k: tuple(v.shape) for k, v in other.state_dict().items() if default.get(k) != tuple(v.shape)}
    if not changed or set(changed) - set(default):
        return None, None
    classes = {default[k][0] for k, s in changed.items() if s and s[0] == OTHER_CLASSES}
    return sorted(changed), (classes.pop() if len(classes) == 1 else None)


def versions() -> dict[str, str]:
    import timm
    import torch
    import torchvision

    return {
        "torch": torch.__version__.split("+")[0],
        "torchvision": torchvision.__version__.split("+")[0],
        "timm": timm.__version__,
    }


def generate(todo: list[tuple[str, str, dict]], log=None) -> dict:
    """The index: library versions, one record per build that succeeds, and those that do not."""
    records, failed = {}, {}
    for number, (name, architecture, kwargs) in enumerate(todo, 1):
        start = time.perf_counter()
        try:
            records[name] = record_for(architecture, kwargs)
        except Exception as exc:  # noqa: BLE001 - an architecture that cannot be built here is listed, not fatal
            failed[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        if log:
            log(f"[{number}/{len(todo)}] {name} {time.perf_counter() - start:.2f}s")
    return {"format": 1, "versions": versions(), "architectures": records, "failed": failed}


def encode(index: dict) -> bytes:
    text = json.dumps(index, sort_keys=True, separators=(",", ":"))
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed index is out of date")
    parser.add_argument("--only", nargs="+", help="print the records of these architectures only")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps({name: record_for(name) for name in args.only}, indent=1))
        return 0
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    data = encode(generate(builds(), log))
    if args.check:
        current = gzip.decompress(INDEX_PATH.read_bytes()) if INDEX_PATH.exists() else b""
        if current != gzip.decompress(data):
            print(f"{INDEX_PATH} is out of date: run python scripts/generate_signatures.py", file=sys.stderr)
            return 1
        return 0
    from zoo.files import replacing

    with replacing(INDEX_PATH) as tmp:
        Path(tmp).write_bytes(data)
    print(f"wrote {INDEX_PATH} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
