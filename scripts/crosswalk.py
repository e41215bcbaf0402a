"""The crosswalk: every torchvision classification architecture, its timm counterparts, and `zoo adapt` both ways.

Counterparts are found, not listed: for each torchvision model, the timm architectures whose name holds
the torchvision name's family word (`regnet` in `regnet_y_400mf` and `regnety_004`) and whose parameter
count, computed on the meta device, is the same (the registry's counts narrow the field; each candidate
is counted again here). Each such pair is then transplanted both ways
(torchvision -> timm and timm -> torchvision) from trained-like random weights (`zoo.adapt.trained`:
seeded constants, BatchNorm statistics measured on random images) with the proof on, and recorded as
exact, exact after a reshape, not the same function (with the measured reason) or refused.

Writes docs/crosswalk.json (read by tests/test_crosswalk.py) and docs/crosswalk.md.
Run: nice -n 10 python scripts/crosswalk.py [--only PATTERN] [--dry-run]   (~20 min on 2 cores)
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JSON_PATH = ROOT / "docs" / "crosswalk.json"
MD_PATH = ROOT / "docs" / "crosswalk.md"
SEED = 0
TV_COUNTS: dict[str, int | None] = {}  # torchvision name -> parameters its eval forward reads (filled by candidates)
ATTRIBUTES = ("kernel_size", "stride", "padding", "dilation", "groups", "padding_mode", "ceil_mode", "approximate")
QUIET = {"Identity", "Dropout", "DropPath", "StochasticDepth", "Flatten", "Sequential", "ModuleList", "ModuleDict"}

EXACT, RESHAPED, DIFFERENT, INCONCLUSIVE, REFUSED = (
    "exact",
    "exact after a reshape",
    "not the same function",
    "inconclusive",
    "refused",
)


def family_word(name: str) -> str:
    """The leading word of a torchvision name: `regnet` for `regnet_y_400mf`, `wide` for `wide_resnet50_2`."""
    return re.match(r"[a-z]+", name).group()


def torchvision_models() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def architecture(spec: str, meta_device: bool = True):
    """The bare architecture `spec` (`torchvision:NAME`, `timm:NAME`: no weight set's head or size)."""
    return bare(spec, meta_device).model


def bare(spec: str, meta_device: bool = True):
    """`spec` built as a bare architecture: a `zoo.targets.Target` that `zoo.adapt` takes as it is."""
    from zoo.targets import build_target

    return build_target(spec, {}, meta_device=meta_device, weight_set=False)


def param_count(spec: str) -> int | None:
    """Parameters the eval forward pass of `spec` reads, counted on the meta device; None if it won't build.

    torchvision's inception_v3 builds an auxiliary classifier that only training runs: it is not counted.
    """
    from zoo.adapt.usage import used_keys

    try:
        model = architecture(spec)
    except Exception:  # noqa: BLE001 - an architecture that cannot be built has no count
        return None
    used = used_keys(model)
    return sum(p.numel() for k, p in model.named_parameters() if used is None or k in used)


def candidates(tv_names: list[str], log=print) -> dict[str, list[str]]:
    """torchvision name -> timm architectures of its family word with the same parameter count.

    The registry's timm entries carry their parameter count (counted on the meta device when the
    catalogue was generated): every entry holding the family word with the torchvision model's count is a
    candidate, and its count is confirmed by building it on the meta device here (as are entries the
    registry has no count for).
    """
    from zoo.registry import catalogues

    timm_entries = [e for e in catalogues.models() if e.family == "timm"]
    found: dict[str, list[str]] = {}
    confirmed: dict[str, int | None] = {}
    tv_all = {}
    for name in tv_names:
        tv_count = TV_COUNTS[name] = param_count(f"torchvision:{name}")
        tv_all[name] = sum(p.numel() for p in architecture(f"torchvision:{name}").parameters())
        word = family_word(name)
        family = [e for e in timm_entries if word in e.name.replace("_", "")]
        maybe = [e.name for e in family if e.params is None or e.params == tv_count or e.params == tv_all[name]]
        for candidate in maybe:
            if candidate not in confirmed:
                confirmed[candidate] = param_count(f"timm:{candidate}")
        found[name] = sorted(c for c in maybe if tv_count and confirmed[c] == tv_count)
        log(f"{name}: {len(family)} timm architectures of family {word!r}, {len(found[name])} with {tv_count:,}")
    return found


def real_model(spec: str, seed: int = SEED):
    """`spec` built for real with trained-like weights (seeded constants, measured BatchNorm statistics)."""
    import torch

    from zoo.adapt.trained import trained_like

    torch.manual_seed(seed)
    return trained_like(architecture(spec, meta_device=False), seed)


def transplant(target_spec: str, source) -> dict[str, Any]:
    """`zoo adapt target_spec` from the module `source`, with the proof on: the row of one direction."""
    from zoo.adapt.core import adapt
    from zoo.adapt.errors import AdaptError, VerifyError

    start = time.perf_counter()
    row: dict[str, Any] = {"target": target_spec}
    try:
        model, report = adapt(bare(target_spec), source, verify=True)
    except VerifyError as exc:
        model, report = None, exc.report
    except AdaptError as exc:
        report = exc.report
        if report is None or report.verify is None:
            row.update(verdict=REFUSED, reason=str(exc).splitlines()[0][:300], seconds=_since(start))
            return row
        model = None
    except Exception as exc:  # noqa: BLE001 - the sweep records what broke and goes on
        row.update(verdict=REFUSED, reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        row["seconds"] = _since(start)
        return row
    check = report.verify
    counts = report.plan.counts()
    reshaped = counts["RESHAPED"]["params"] + counts["RESHAPED"]["buffers"]
    if check.status == "equal":
        verdict = RESHAPED if reshaped else EXACT
    else:
        verdict = DIFFERENT if check.status == "different" else INCONCLUSIVE
    row.update(
        verdict=verdict,
        max_abs=check.max_abs,
        max_rel=check.max_rel,
        compared=check.summary(),
        stages=sum(c.kind == "stage" for c in check.comparisons),
        reshaped=reshaped,
        fed=f"{report.plan.fed_count()}/{sum(not i.bookkeeping for i in report.plan.keys)}",
        dropped=sum(not d.key.endswith("num_batches_tracked") for d in report.plan.dropped),
        eps=[n for n in report.plan.notes if n.startswith("eps differs")],
        seconds=_since(start),
    )
    if verdict in (DIFFERENT, INCONCLUSIVE):
        target_model = model if model is not None else _rebuilt(target_spec, source, report)
        row["reason"] = explain(check, report, target_model, source)
    return row


def _rebuilt(target_spec: str, source, report):
    """The target as adapt loaded it (a refused proof returns no model): build and load it again, unverified."""
    from zoo.adapt.core import adapt

    model, _ = adapt(bare(target_spec), source, verify=False)
    return model


def explain(check, report, target, source) -> str:
    """The measured reason two models compute different functions: where, and what differs between them."""
    failed = [c for c in check.comparisons if not c.passed]
    first = next((c for c in failed if c.kind == "stage"), failed[0] if failed else None)  # in forward order
    parts = []
    if first is not None:
        where = "the output" if first.kind == "output" else f"stage {first.source} -> {first.target}"
        parts.append(f"first difference at {where} (max abs {first.max_abs:.3g})")
    elif check.reason:
        parts.append(check.reason.split(";")[0])
    pairs = {}
    for item in report.plan.keys:
        if item.fed and item.source:
            pairs.setdefault(item.key.rpartition(".")[0], item.source.rpartition(".")[0])
    settings: collections.Counter = collections.Counter()
    classes: collections.Counter = collections.Counter()
    for t_name, s_name in pairs.items():
        t_mod, s_mod = _get(target, t_name), _get(source, s_name)
        if t_mod is None or s_mod is None:
            continue
        if type(t_mod).__name__ != type(s_mod).__name__:
            classes[f"{type(s_mod).__name__} -> {type(t_mod).__name__}"] += 1
        for attribute in ATTRIBUTES:
            a, b = getattr(s_mod, attribute, None), getattr(t_mod, attribute, None)
            if a is not None and b is not None and a != b:
                settings[f"{attribute} {a} -> {b}"] += 1
    if settings:
        parts.append("settings differ: " + ", ".join(f"{k} (x{n})" for k, n in settings.most_common(4)))
    only = _parameterless(target) - _parameterless(source)
    missing = _parameterless(source) - _parameterless(target)
    if only or missing:
        text = []
        if only:
            text.append("only in target: " + ", ".join(f"{k} x{n}" for k, n in only.most_common(4)))
        if missing:
            text.append("only in source: " + ", ".join(f"{k} x{n}" for k, n in missing.most_common(4)))
        parts.append("; ".join(text))
    if classes:
        parts.append("module classes: " + ", ".join(f"{k} (x{n})" for k, n in classes.most_common(3)))
    return "; ".join(parts)


def _parameterless(model) -> collections.Counter:
    """Kinds of parameter-free leaf modules (activations, pooling), with their telling settings."""
    kinds: collections.Counter = collections.Counter()
    for module in model.modules():
        if list(module.children()) or list(module.parameters(recurse=False)):
            continue
        name = type(module).__name__
        if name in QUIET:
            continue
        approximate = getattr(module, "approximate", None)
        kinds[f"{name}({approximate})" if approximate not in (None, "none") else name] += 1
    return kinds


def _get(model, name: str):
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _since(start: float) -> float:
    return round(time.perf_counter() - start, 2)


def _direction(target_spec: str, source_spec: str) -> dict[str, Any]:
    try:
        source = real_model(source_spec)
    except Exception as exc:  # noqa: BLE001 - recorded, and the sweep goes on
        return {"target": target_spec, "verdict": REFUSED, "reason": f"the source does not build: {exc}"[:300]}
    return transplant(target_spec, source)


def pair_row(tv_name: str, timm_name: str) -> dict[str, Any]:
    """Both directions for one pair."""
    import gc

    tv_spec, timm_spec = f"torchvision:{tv_name}", f"timm:{timm_name}"
    forward = _direction(timm_spec, tv_spec)
    gc.collect()
    backward = _direction(tv_spec, timm_spec)
    gc.collect()
    return {"torchvision": tv_name, "timm": timm_name, "torchvision->timm": forward, "timm->torchvision": backward}


def crosswalk(only: str | None = None, log=print, progress=None) -> dict[str, Any]:
    """The whole table; `progress(data)` (when given) is called with the table so far after each pair."""
    start = time.perf_counter()
    tv_names = [n for n in torchvision_models() if only is None or fnmatch.fnmatchcase(n, only)]
    found = candidates(tv_names, log)
    counted = _since(start)
    pairs = []
    for tv_name in sorted(tv_names, key=lambda n: TV_COUNTS.get(n) or 0):  # small first: big ones cost most
        for timm_name in found[tv_name]:
            log(f"{tv_name} <-> {timm_name}")
            row = pair_row(tv_name, timm_name)
            log(f"  {row['torchvision->timm']['verdict']} / {row['timm->torchvision']['verdict']}")
            pairs.append(row)
            if progress is not None:
                progress(_table(pairs, tv_names, found, counted, start))
    return _table(pairs, tv_names, found, counted, start)


def _table(pairs, tv_names, found, counted, start) -> dict[str, Any]:
    import timm
    import torch
    import torchvision

    return {
        "generator": "scripts/crosswalk.py",
        "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__, "timm": timm.__version__},
        "seed": SEED,
        "tolerance": {"rtol": 1e-4, "atol": 1e-5},
        "pairs": pairs,
        "no_counterpart": [n for n in tv_names if not found[n]],
        "seconds": {"candidates": counted, "total": _since(start)},
    }


def to_markdown(data: dict[str, Any]) -> str:
    pairs = data["pairs"]
    directions = [row[d] for row in pairs for d in ("torchvision->timm", "timm->torchvision")]
    tally = collections.Counter(d["verdict"] for d in directions)
    same = sum(row["torchvision->timm"]["verdict"] in (EXACT, RESHAPED) for row in pairs)
    lines = [
        "# Crosswalk: torchvision and timm architectures that compute the same function",
        "",
        f"Generated by `{data['generator']}` (torch {data['versions']['torch']}, torchvision "
        f"{data['versions']['torchvision']}, timm {data['versions']['timm']}); do not edit by hand. "
        "For every torchvision classification architecture, the timm architectures of its family word with "
        "the same parameter count (counted on the meta device) were transplanted both ways with `zoo adapt` "
        "and the proof on, from trained-like random weights (seeded constants, BatchNorm statistics "
        "measured on random images). Tolerance: rtol 1e-4, atol 1e-5. The proof compares the outputs and "
        "every transplanted stage on two seeded images; `input` says at which size (64x64 where the "
        "architecture takes it, else its own size).",
        "",
        f"{len(pairs)} pairs, {same} the same function; directions: "
        + ", ".join(f"{n} {k}" for k, n in tally.most_common())
        + f". Sweep time: {data['seconds']['total'] / 60:.1f} min ({data['seconds']['candidates']:.0f} s "
        "finding candidates). Torchvision architectures with no timm counterpart of the same parameter count: "
        + (", ".join(data["no_counterpart"]) or "none")
        + ".",
        "",
        "| torchvision | timm | torchvision -> timm | timm -> torchvision | max abs diff | compared | notes |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in pairs:
        forward, backward = row["torchvision->timm"], row["timm->torchvision"]
        diffs = "; ".join(f"{d['max_abs']:.2g}" for d in (forward, backward) if "max_abs" in d)
        notes = []
        for direction in (forward, backward):
            notes += [n for n in direction.get("eps", []) if n not in notes]
            if direction.get("reason") and direction["reason"] not in notes:
                notes.append(direction["reason"])
        compared = forward.get("compared") or backward.get("compared") or ""
        lines.append(
            f"| {row['torchvision']} | {row['timm']} | {forward['verdict']} | {backward['verdict']} | {diffs} "
            f"| {compared} | {'<br>'.join(notes).replace('|', '/')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="torchvision names matching this glob (the files are not written)")
    parser.add_argument("--dry-run", action="store_true", help="print the candidates only")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.dry_run:
        for name, found in candidates(torchvision_models()).items():
            print(f"{name}: {', '.join(found) or '-'}")
        return
    partial = JSON_PATH.with_suffix(".partial.json")
    data = crosswalk(
        args.only,
        log=lambda text: print(text, flush=True),
        progress=None if args.only else lambda table: partial.write_text(json.dumps(table, indent=1) + "\n"),
    )
    if args.only:
        print(json.dumps(data, indent=1))
        return
    JSON_PATH.write_text(json.dumps(data, indent=1) + "\n")
    partial.unlink(missing_ok=True)
    MD_PATH.write_text(to_markdown(data))
    print(f"wrote {JSON_PATH} and {MD_PATH}")


if __name__ == "__main__":
    main()
