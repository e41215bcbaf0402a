"""The timm catalogue, read from the installed timm: every architecture and every pretrained tag.

Used by scripts/generate_registry.py for the shipped catalogue, and by zoo itself when the installed timm
is not the one the shipped catalogue came from. Imports timm and torch: never imported by `zoo list`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

FAMILY = "timm"
HF_ENDPOINT = "https://huggingface.co"
# timm's load_state_dict_from_hf asks for pytorch_model.bin and takes its safetensors alternative first
# (timm/models/_hub.py: HF_WEIGHTS_NAME, _get_safe_alternatives), so the file timm loads is this one.
HF_DEFAULT_FILE = "model.safetensors"


def catalogue_rows(known_params: Mapping[str, int] | None = None, count_params: Callable | None = None) -> list[dict]:
    """One row per timm architecture (registry-file fields), its pretrained tags as weight sets.

    Parameter counts come from `known_params` (by model name, `arch` or `arch.tag`: a rebuild carries
    over the counts of the models both versions have) when present, else from `count_params(model_name)`
    (default: build on the meta device and count), once per distinct `params_key`.
    """
    import timm
    from timm.models import get_pretrained_cfg

    tags: dict[str, list[str]] = {}
    for name in timm.list_models(pretrained=True):
        arch, _, tag = name.partition(".")
        tags.setdefault(arch, []).append(tag)
    wanted: dict[str, list[str]] = {}  # params_key -> the model names that build that model
    rows = []
    for arch in timm.list_models():
        default_cfg = get_pretrained_cfg(arch).to_dict()
        ordered = sorted(tags.get(arch, []), key=lambda tag: tag != default_cfg.get("tag"))  # timm's default first
        weights = [_weights(arch, tag, get_pretrained_cfg(f"{arch}.{tag}").to_dict()) for tag in ordered]
        row = {
            "name": arch,
            "family": FAMILY,
            "builder": "timm:create_model",
            "builder_kwargs": {"model_name": arch},
            "tags": ["classification"],
            "params": params_key(arch, default_cfg),
            "weights": weights,
        }
        wanted.setdefault(row["params"], []).append(arch)
        for w in weights:
            wanted.setdefault(w["params"], []).append(w["builder_kwargs"]["model_name"])
        rows.append(row)
    params = resolve_params(wanted, known_params or {}, count_params or count_params_on_meta)
    for row in rows:
        for record in (row, *row["weights"]):
            count = params.get(record.pop("params"))
            if count is not None:
                record["params"] = count
    return rows


def params_key(arch: str, cfg: Mapping[str, Any]) -> str:
    """What decides a timm model's parameter count: the arguments create_model takes from the pretrained cfg.

    timm's `_update_default_model_kwargs` passes num_classes, global_pool, in_chans and, for fixed-size
    models, img_size; two tags with the same values build the same model.
    """
    size = cfg.get("input_size") or (3, 224, 224)
    fixed = "x".join(map(str, size[-2:])) if cfg.get("fixed_input_size") else "any"
    num_classes = cfg.get("num_classes")
    classes = num_classes if num_classes is not None and num_classes >= 0 else "default"
    return f"{arch}|classes={classes}|pool={cfg.get('global_pool')}|chans={size[0]}|size={fixed}"


def resolve_params(wanted: Mapping[str, list[str]], known: Mapping[str, int], count: Callable) -> dict[str, int]:
    """params_key -> parameter count: from `known`, the rest counted (two processes when there are many)."""
    result = {}
    for key, names in wanted.items():
        found = next((known[name] for name in names if name in known), None)
        if found is not None:
            result[key] = found
    todo = [(key, names[0]) for key, names in wanted.items() if key not in result]
    if len(todo) > 20 and count is count_params_on_meta:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2) as pool:
            counted = list(pool.map(count, [name for _, name in todo], chunksize=8))
    else:
        counted = [count(name) for _, name in todo]
    result.update({key: n for (key, _), n in zip(todo, counted, strict=True) if n is not None})
    return result


def count_params_on_meta(model_name: str) -> int | None:
    """The parameter count of `timm.create_model(model_name)`, built on the meta device (no memory, no init)."""
    import timm
    import torch

    try:
        with torch.device("meta"):
            model = timm.create_model(model_name, pretrained=False)
    except Exception:  # noqa: BLE001 - a model that cannot be built on meta: no count rather than a wrong one
        return None
    return sum(p.numel() for p in model.parameters())


def hf_url(hf_hub_id: str, file_name: str = HF_DEFAULT_FILE) -> str:
    """The resolve URL of `file_name` in hub repo `hf_hub_id` (`repo@revision` picks the revision, as in timm)."""
    repo, _, revision = hf_hub_id.partition("@")
    return f"{HF_ENDPOINT}/{repo}/resolve/{revision or 'main'}/{file_name}"


def cache_file_name(hf_hub_id: str, file_name: str = HF_DEFAULT_FILE) -> str:
    """One name per hub file: `timm/resnet50.a1_in1k` gives `resnet50.a1_in1k.safetensors`; another
    organisation's repo keeps it (`org--name.safetensors`). Tags that share a repo (timm's quickgelu CLIP
    variants load the plain ones' files) share the cached file."""
    repo = hf_hub_id.partition("@")[0].removeprefix("timm/").replace("/", "--")
    return f"{repo}.{file_name.rsplit('.', 1)[-1]}"


def _weights(arch: str, tag: str, cfg: dict) -> dict:
    """A weight set row from a timm pretrained cfg: the file timm itself would load, and what the weights expect."""
    hub_id, old_url = cfg.get("hf_hub_id"), cfg.get("url") or None
    meta: dict[str, Any] = {"crop_pct": cfg.get("crop_pct"), "crop_mode": cfg.get("crop_mode")}
    if hub_id:  # timm prefers the hub whenever a cfg names a repo (_resolve_pretrained_source)
        file_name = cfg.get("hf_hub_filename") or HF_DEFAULT_FILE
        entry = {
            "tag": tag,
            "url": hf_url(hub_id, file_name),
            "file_name": cache_file_name(hub_id, file_name),
            "format": "safetensors" if file_name.endswith(".safetensors") else "pth",
        }
        meta.update(hf_hub_id=hub_id, hf_file=file_name)
        if old_url:  # the GitHub release file timm used before the hub: same weights, its own file
            entry["legacy_urls"] = [old_url]
    else:
        entry = {"tag": tag, "url": old_url, "format": "pth"}
    num_classes = cfg.get("num_classes")
    entry.update(
        num_classes=num_classes if num_classes and num_classes > 0 else None,
        input_size=list(cfg.get("input_size") or (3, 224, 224)),
        mean=list(cfg["mean"]) if cfg.get("mean") else None,
        std=list(cfg["std"]) if cfg.get("std") else None,
        interpolation=cfg.get("interpolation") or None,
        license=cfg.get("license") or None,
        params=params_key(arch, cfg),
        meta={k: v for k, v in meta.items() if v is not None},
        builder_kwargs={"model_name": f"{arch}.{tag}"},  # the tag's head and size (timm builds arch.tag so)
    )
    return _drop_none(entry)


def _drop_none(mapping: dict) -> dict:
    return {k: v for k, v in mapping.items() if v is not None}
