"""`adapt(target, source, ...)`: plan, load, initialise, verify and save one transplant."""

from __future__ import annotations

import contextlib
import fnmatch
import inspect
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.adapt import adapters, norm_eps
from zoo.adapt.errors import CoverageError, InconclusiveError, NothingLoadedError, StrictLoadError, VerifyError
from zoo.adapt.initial import still_initial
from zoo.adapt.matching import Renaming, apply_rules, flat_canon, match_keys, parse_rule, plain_canon
from zoo.adapt.plan import (
    ADAPTED,
    EXACT,
    LOADED,
    MISSING,
    REMAP,
    RENAMED,
    RESHAPED,
    SKIPPED_SHAPE,
    DroppedKey,
    KeyPlan,
    LoadPlan,
    is_bookkeeping,
)
from zoo.adapt.report import AdaptReport, group_keys
from zoo.adapt.stages import seeded_pairs, seeded_value, stage_pairs
from zoo.adapt.usage import usage_order
from zoo.adapt.verify import INCONCLUSIVE, SKIPPED
from zoo.adapt.verify import verify as run_verify
from zoo.errors import UserInputError
from zoo.registry import catalogues
from zoo.registry.references import import_reference
from zoo.targets import Target, build_target, is_reference, resolve

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt", ".tar")


@dataclass
class Source:
    """The weights being transplanted, and the architecture they belong to when zoo knows it."""

    name: str
    state_dict: dict[str, torch.Tensor]
    spec: str | None = None  # a registry model spec: the source architecture is known
    model: nn.Module | None = None
    file: str | None = None
    sha256: str | None = None
    derived: set[str] = field(default_factory=set)  # tensors a remap function computed (not in the file)
    notes: list[str] = field(default_factory=list)  # what the loader unwrapped (EMA or raw weights, prefixes)
    architecture: nn.Module | None = None  # the source architecture built on the meta device, once needed

    def built(self) -> nn.Module | None:
        """The source architecture (meta device, no weights), built once; None when zoo does not know it."""
        if self.architecture is None and self.spec is not None:
            self.architecture = build_target(self.spec, {}, meta_device=True).model
        return self.architecture


def is_checkpoint_path(spec: str) -> bool:
    return os.path.exists(spec) or spec.lower().endswith(CHECKPOINT_SUFFIXES)


def load_source(
    source: Any, from_weights: str | os.PathLike | None = None, trust_pickle: bool = False, ema: bool | None = None
) -> Source:
    """A Source from a registry spec (fetched, or fed by `from_weights`), a checkpoint path, a dict or a module."""
    from torch import nn

    from zoo.weights.loading import load_checkpoint

    if isinstance(source, nn.Module):
        return Source(type(source).__name__, dict(source.state_dict()), model=source)
    if isinstance(source, Mapping):
        return Source("<state dict>", dict(source))
    spec = os.fspath(source)
    if from_weights is None and is_checkpoint_path(spec):
        checkpoint = load_checkpoint(spec, trust_pickle=trust_pickle, ema=ema)
        return Source(Path(spec).name, checkpoint.state_dict, file=str(spec), notes=checkpoint.notes())
    selection = resolve(spec)
    sha256 = None
    if from_weights is not None:
        path = Path(from_weights)
    else:
        from zoo.weights.fetching import fetch

        result = fetch(selection)
        path, sha256 = result.path, result.sha256
    checkpoint = load_checkpoint(path, trust_pickle=trust_pickle, ema=ema)
    notes = checkpoint.notes()
    return Source(selection.name, checkpoint.state_dict, spec=spec, file=str(path), sha256=sha256, notes=notes)


def _accepts(spec: Any, name: str) -> bool | None:
    """Whether a target's builder takes keyword `name` (None: cannot tell, it takes **kwargs)."""
    if not isinstance(spec, str):
        return False
    if is_reference(spec):
        builder = import_reference(spec)
    else:
        architecture = catalogues.architectures().get(spec)
        if architecture is None:
            return None  # a registry model: its family's builder passes **kwargs on
        builder = architecture.builder
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return None
    if name in parameters:
        return True
    return None if any(p.kind is p.VAR_KEYWORD for p in parameters.values()) else False


def build(spec: str, kwargs: dict[str, Any], num_classes: int | None, in_chans: int | None) -> Target:
    """Build the target on the meta device, passing num_classes/in_chans to its builder when it takes them."""
    extra = {k: v for k, v in (("num_classes", num_classes), ("in_chans", in_chans)) if v is not None}
    wanted = {k: v for k, v in extra.items() if _accepts(spec, k) is not False}
    while True:
        try:
            target = build_target(spec, {**kwargs, **wanted}, meta_device=True)
            break
        except TypeError as exc:
            dropped = next((k for k in wanted if k in str(exc)), None)
            if dropped is None:
                raise
            del wanted[dropped]
    if num_classes is not None and "num_classes" not in wanted:
        adapters.replace_head(target.model, num_classes)
    if in_chans is not None and "in_chans" not in wanted:
        adapters.replace_stem(target.model, in_chans)
    return target


def _remap_renamings(source: Source, target_spec: str, model: nn.Module) -> list[Renaming]:
    """The registered remaps for this pair: the source entry's named one, then any whose patterns match."""
    remaps = catalogues.remaps()
    chosen = []
    if source.spec:
        entry = resolve(source.spec).entry
        if entry.remap:
            remap = remaps.get(entry.remap)
            if remap is None:
                raise UserInputError(
                    f"{entry.qualified_name} names key remap {entry.remap!r}, but no plugin registers it"
                )
            chosen.append(remap)
    source_name = source.spec or source.name
    for _, remap in remaps.items():
        if remap in chosen or (remap.source == "*" and remap.target == "*"):
            continue
        if fnmatch.fnmatchcase(source_name, remap.source) and fnmatch.fnmatchcase(str(target_spec), remap.target):
            chosen.append(remap)
    renamings = []
    for remap in chosen:
        if remap.function is None:
            renamings.append(apply_rules(list(source.state_dict), remap.rules, REMAP, f"remap {remap.name}"))
            continue
        by_id = {id(v): k for k, v in source.state_dict.items()}
        names = {}
        for new, value in remap.function(dict(source.state_dict), model).items():
            old = by_id.get(id(value))
            if old is None:  # a tensor the remap computed: it joins the source under its new name
                old = f"{new} <{remap.name}>"
                source.state_dict[old] = value
                source.derived.add(old)
            if old != new:
                names[new] = old
        renamings.append(Renaming(REMAP, f"remap {remap.name}", names))
    return renamings


def _canon(in_chans: int | None, stem_key: str | None, source_stem: str | None):
    def canon(side: str, key: str, shape: tuple[int, ...]):
        if in_chans is not None and key == (stem_key if side == "target" else source_stem) and len(shape) == 4:
            shape = (shape[0], -1, *shape[2:])
        return plain_canon(side, key, shape)

    return canon


def plan_load(
    model: nn.Module,
    source: Source,
    target_spec: str,
    rules: Sequence[str] = (),
    num_classes: int | None = None,
    in_chans: int | None = None,
    source_model: nn.Module | None = None,
) -> tuple[LoadPlan, dict[str, torch.Tensor]]:
    """The load plan for `model` from `source`, and the tensors to load (already reshaped / adapted).

    Structural alignment, when names leave keys on both sides, follows each side's order of use
    (`zoo.adapt.usage`; the source architecture is built on the meta device for it). With the source
    architecture at hand (`source_model`, or built for alignment), norm layers of another eps are compensated.
    """
    expected = model.state_dict()
    params = {name for name, _ in model.named_parameters()}
    shapes = {k: tuple(v.shape) for k, v in expected.items()}
    renamings = _remap_renamings(source, target_spec, model)  # first: it adds the tensors a remap computes
    source_shapes = {k: tuple(v.shape) for k, v in source.state_dict.items() if hasattr(v, "shape")}
    if rules:
        renamings.append(apply_rules(list(source_shapes), [parse_rule(r) for r in rules]))
    stem = adapters.first_conv(model) if in_chans is not None else None
    stem_key = f"{stem}.weight" if stem else None
    source_stem = next((k for k, s in source_shapes.items() if len(s) == 4 and k.endswith("weight")), None)
    head = adapters.classifier(model, num_classes) if num_classes is not None else None
    canon = _canon(in_chans, stem_key, source_stem)
    matches = match_keys(shapes, source_shapes, renamings, canon, structural=False)
    if _leftovers(matches, shapes, source_shapes):
        source_model = source_model or source.model or _built_or_none(source)
        input_size = _input_size(source)
        target_order = usage_order(model, input_size)
        source_order = usage_order(source_model, input_size) if source_model is not None else None
        matches = match_keys(shapes, source_shapes, renamings, canon, True, target_order, source_order)

    plan, tensors, fed_sources = LoadPlan(), {}, set()
    drop_reason: dict[str, str] = {}
    for key, shape in shapes.items():
        item = KeyPlan(key, shape, expected[key].numel(), key in params)
        plan.keys.append(item)
        match = matches.get(key)
        if match is None:
            if item.bookkeeping:
                item.note = "num_batches_tracked counts training steps; eval never reads it"
            continue
        value = source.state_dict[match.source]
        item.source, item.source_shape = match.source, tuple(value.shape)
        item.strategy, item.rule = match.strategy, match.rule
        if head and key.startswith(head + ".") and item.source_shape != shape:
            item.outcome, item.note = MISSING, f"new classifier (--num-classes {num_classes})"
            drop_reason[match.source] = f"old classifier, replaced (--num-classes {num_classes})"
            continue
        if item.source_shape == shape:
            item.outcome = LOADED if match.strategy == EXACT else RENAMED
            item.operation = "copy"
        elif (
            key == stem_key
            and len(shape) == 4
            and item.source_shape[0] == shape[0]
            and item.source_shape[2:] == shape[2:]
        ):
            value, item.operation = adapters.adapt_in_chans(value, in_chans)
            item.outcome = ADAPTED
        elif value.numel() == item.numel and (
            plain_canon("", "", shape) == plain_canon("", "", item.source_shape)
            or flat_canon(shape) == flat_canon(item.source_shape)
        ):
            value = value.reshape(shape)
            item.outcome, item.operation = RESHAPED, f"reshape {item.source_shape} -> {shape}"
        else:
            item.outcome = SKIPPED_SHAPE
            drop_reason[match.source] = "its shape does not fit the target key of the same role (SKIPPED_SHAPE)"
            continue
        target_dtype = expected[key].dtype
        if value.dtype != target_dtype and value.is_floating_point():
            value = value.to(target_dtype)
            item.operation = f"{item.operation}, cast to {str(target_dtype).replace('torch.', '')}"
        tensors[key] = value
        fed_sources.add(match.source)
    for key, shape in source_shapes.items():
        if key not in fed_sources:
            reason = drop_reason.get(key) or (
                "num_batches_tracked: the target has no such buffer (nothing lost)"
                if is_bookkeeping(key)
                else "no target key matched"
            )
            plan.dropped.append(DroppedKey(key, shape, reason))
    if source_model is not None:
        norm_eps.compensate(model, source_model, plan, tensors)
    if head:
        plan.notes.append(f"--num-classes {num_classes}: classifier {head} is new")
    if stem_key:
        plan.notes.append(f"--in-chans {in_chans}: first convolution {stem}")
    return plan, tensors


def with_metadata(tensors: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """`tensors` with the model's own state-dict metadata (module versions some loaders read, as MNASNet's)."""
    import collections

    state = collections.OrderedDict(tensors)
    state._metadata = getattr(model.state_dict(), "_metadata", collections.OrderedDict())  # type: ignore[attr-defined]
    return state


def _built_or_none(source: Source) -> nn.Module | None:
    """The source architecture for alignment; None when it will not build (alignment then uses key order)."""
    from zoo.errors import ZooError

    try:
        return source.built()
    except (ZooError, RuntimeError, TypeError, ValueError, NotImplementedError):
        return None


def _leftovers(matches, target: dict, source: dict) -> bool:
    """Whether names left unmatched keys on both sides (structural alignment has work to do)."""
    used = {m.source for m in matches.values()}
    free_t = any(k not in matches and not is_bookkeeping(k) for k in target)
    return free_t and any(k not in used and not is_bookkeeping(k) for k in source)


def check_plan(
    plan: LoadPlan, report: AdaptReport, strict: bool, expect_missing: Sequence[str], min_coverage: float | None
) -> None:
    """Refuse zero-loaded, strict and coverage failures, each with its own error (and exit code)."""
    if plan.fed_count() == 0:
        raise NothingLoadedError(
            f"not one tensor of {report.target} was fed from {report.source} "
            f"({len(plan.keys)} target keys, {len(plan.dropped)} source keys); check the pair, or add --rule",
            report,
        )
    if strict:
        unfed = [
            i.key
            for i in plan.keys
            if not i.fed and not i.bookkeeping and not any(fnmatch.fnmatchcase(i.key, g) for g in expect_missing)
        ]
        if unfed:
            raise StrictLoadError(
                f"--strict: {len(unfed)} target keys were not fed: {', '.join(group_keys(unfed)[:8])}; "
                "feed them (--rule) or allow them (--expect-missing GLOB)",
                report,
            )
    if min_coverage is not None:
        coverage = plan.coverage().by_params
        if coverage < min_coverage:
            raise CoverageError(
                f"coverage {coverage:.1%} of parameters is below --min-coverage {min_coverage:.1%}", report
            )


def _materialise_rest(model: nn.Module, plan: LoadPlan, policy: str, target: Target) -> None:
    """Initialise the parameters nothing fed; unfed buffers take the values the builder computes.

    Buffers are what the constructor derives (a window attention's relative position index, fresh
    BatchNorm statistics), so they come from a build with real buffers (parameters on the meta device)
    instead of an init policy. A module target cannot be rebuilt: its empty buffers get the init policy.
    """
    unfed = [i for i in plan.keys if not i.fed]
    buffers = {name for name, _ in model.named_buffers()}
    empty = [name for name, b in model.named_buffers() if b.is_meta]
    rebuilt = {}
    if empty and target.kind != "module":
        real = target.real_buffers()
        for name in empty:
            module, leaf = adapters.owner(model, name)
            module._buffers[leaf] = real[name]
            rebuilt[name] = "as the builder computes it"
    todo = [i.key for i in unfed if i.key not in buffers or (i.key not in rebuilt and _tensor(model, i.key).is_meta)]
    how = {**adapters.materialise(model, todo, policy), **rebuilt}
    for item in plan.keys:
        if item.key in how:
            item.init = how[item.key]
        elif not item.fed:
            item.init = "kept as built"
    leftovers = [name for name, b in model.named_buffers() if b.is_meta]
    if leftovers:  # a module target's non-persistent buffers: zeros would be a lie, so say what is missing
        raise UserInputError(
            f"{len(leftovers)} buffers of the target are still empty ({', '.join(group_keys(leftovers)[:3])}): "
            "pass the target by name, so that zoo can build them"
        )


def _tensor(model: nn.Module, key: str):
    module, leaf = adapters.owner(model, key)
    return getattr(module, leaf)


SMALL_SIDE = 64  # verification input side where the model accepts any size (both sides compute one function)


def _verify(target: Target, source: Source, num_classes, in_chans, plan: LoadPlan, seed: int = 0, **options):
    from zoo.adapt.verify import VerifyResult

    if in_chans is not None and in_chans != 1:
        return VerifyResult(SKIPPED, True, reason=f"--in-chans {in_chans} changes the function (only 1 compares)")
    model, note = source.model, ""
    if model is None:
        model, note = _source_model(source, seed)
        if model is None:
            return VerifyResult(SKIPPED, True, reason=note)
    pairs_of = getattr(target.model, "zoo_verify_pairs", None)
    if callable(pairs_of):
        pairs, mode = pairs_of(), "features"
    elif num_classes is not None:
        s_head, t_head = adapters.classifier(model), adapters.classifier(target.model, num_classes)
        pairs, mode = [("<" + s_head, "<" + t_head)], "head input"
    else:
        pairs, mode = [("", "")], "outputs"
    stages = stage_pairs(plan, target.model, model)
    full = (1, *_input_size(source))
    small = (*full[:2], *(min(side, SMALL_SIDE) for side in full[2:]))
    target_input = "mean1" if in_chans == 1 else "same"
    with _seeded(plan, target.model, model, seed) as seeded:
        result = run_verify(
            model, target.model, pairs, small, target_input, mode, seed, fallback_shape=full, stages=stages, **options
        )
    result.seeded = seeded
    if seeded:
        shown = ", ".join(group_keys(seeded)[:3])
        said = f"{len(seeded)} constant tensors given seeded values in both models ({shown})"
        result.reason = f"{said}; {result.reason}" if result.reason else said
    if note:
        result.reason = f"{note}; {result.reason}" if result.reason else note
    return result


@contextlib.contextmanager
def _seeded(plan: LoadPlan, target: nn.Module, source: nn.Module, seed: int):
    """Give fed tensors that hold one constant the same seeded values in both models; restore them afterwards.

    A fresh model's zero head or all-ones BatchNorms would otherwise make a wrong pairing invisible.
    Yields the target keys seeded.
    """
    from zoo.adapt.plan import RESHAPED

    items = plan.by_key()
    state = source.state_dict(keep_vars=True)
    undo: list[tuple[dict, str, Any]] = []
    seeded = []
    try:
        for n, (target_key, source_key) in enumerate(seeded_pairs(plan, state)):
            item = items[target_key]
            value = seeded_value(state[source_key], seed + 1 + n)
            fed = value.reshape(item.shape) if item.outcome == RESHAPED else value
            if item.offset:
                fed = fed + item.offset
            undo.append(_put(source, source_key, value))
            undo.append(_put(target, target_key, fed.to(_tensor(target, target_key).dtype)))
            seeded.append(target_key)
        yield seeded
    finally:
        for table, leaf, old in reversed(undo):
            table[leaf] = old


def _put(model: nn.Module, key: str, value) -> tuple[dict, str, Any]:
    """Swap tensor `key` of `model` for `value` (no in-place write: storage may be shared); returns the undo."""
    from torch import nn

    module, leaf = adapters.owner(model, key)
    table = module._parameters if leaf in module._parameters else module._buffers
    old = table[leaf]
    table[leaf] = nn.Parameter(value, requires_grad=False) if isinstance(old, nn.Parameter) else value
    return table, leaf, old


def _source_model(source: Source, seed: int = 0) -> tuple[nn.Module | None, str]:
    """The source architecture with the source weights (remapped by its entry's remap), and a note; or why not.

    Built on the meta device and loaded with `assign=True`: no random init of weights about to be replaced.
    Tensors of the architecture the checkpoint lacks keep seeded initial values (a real build), and the
    note says so: a target key fed from nothing then differs, and the proof fails as it should.
    """
    import torch

    from zoo.weights.loading import apply_remap

    raw = {k: v for k, v in source.state_dict.items() if k not in source.derived}
    model = source.built()
    expected = model.state_dict()
    entry = resolve(source.spec).entry
    candidates = [apply_remap(entry.remap, dict(raw), model), raw] if entry.remap else [raw]
    fits = [[k for k in expected if k not in c and not is_bookkeeping(k)] for c in candidates]
    best = min(range(len(candidates)), key=lambda n: len(fits[n]))  # remapped first on a tie
    state, missing = candidates[best], fits[best]
    if len(missing) * 2 > len(expected):
        remapped = f" after remap {entry.remap}" if entry.remap else ""
        return None, (
            f"the checkpoint does not fit {source.spec}{remapped} ({len(missing)} keys missing, "
            f"e.g. {', '.join(missing[:3])}), so the source cannot run"
        )
    state = {k: v for k, v in state.items() if k in expected}
    for key in expected:
        if key not in state and is_bookkeeping(key):  # num_batches_tracked the checkpoint left out
            state[key] = torch.zeros((), dtype=torch.long)
    note = ""
    try:
        if not missing:
            model.load_state_dict(with_metadata(state, model), strict=True, assign=True)
        if missing or any(b.is_meta for b in model.buffers()):  # a real build: what the file lacks, seeded
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(seed)
                model = build_target(source.spec, {}).model
            model.load_state_dict(with_metadata(state, model), strict=False)
    except RuntimeError as exc:
        return None, f"the checkpoint does not fit {source.spec} ({str(exc).splitlines()[-1].strip()})"
    if missing:
        note = (
            f"the checkpoint lacks {len(missing)} tensors of {source.spec} ({', '.join(group_keys(missing)[:3])}): "
            f"the source runs with seeded initial values there"
        )
    return model, note


def _input_size(source: Source) -> tuple[int, ...]:
    if source.spec:
        weights = resolve(source.spec).weights
        if weights is not None and weights.input_size:
            return tuple(weights.input_size)
    return (3, 224, 224)


def save_state_dict(model: nn.Module, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write the model's state dict to `path` atomically: safetensors unless `fmt`/suffix says pth."""
    import torch

    from zoo.files import replacing

    path = Path(path)
    fmt = fmt or ("pth" if path.suffix in (".pth", ".pt", ".bin") else "safetensors")
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    with replacing(path) as tmp:
        if fmt == "pth":
            torch.save(state, tmp)
        else:
            from safetensors.torch import save_file

            seen: dict[int, str] = {}
            for k, v in list(state.items()):  # safetensors refuses shared storage: store shared tensors once each
                if v.untyped_storage().data_ptr() in seen and v.numel():
                    state[k] = v.clone()
                seen.setdefault(v.untyped_storage().data_ptr(), k)
            save_file(state, str(tmp), metadata={"format": "pt", "producer": "zoo adapt"})
    return path


def adapt(
    target: str | Target | nn.Module,
    source: Any,
    *,
    from_weights: str | os.PathLike | None = None,
    kwargs: dict[str, Any] | None = None,
    num_classes: int | None = None,
    in_chans: int | None = None,
    rules: Sequence[str] = (),
    expect_missing: Sequence[str] = (),
    init: str = "default",
    strict: bool = False,
    min_coverage: float | None = None,
    verify: bool | None = None,
    dry_run: bool = False,
    output: str | os.PathLike | None = None,
    output_format: str | None = None,
    report_path: str | os.PathLike | None = None,
    trust_pickle: bool = False,
    ema: bool | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> tuple[nn.Module, AdaptReport]:
    """Load `source` weights into `target`; returns the model and the report (raises AdaptError on refusal).

    `target`: an architecture name, a registry model, `file.py:Class` / `module:Class` (built with `kwargs`,
    on the meta device), a `zoo.targets.Target` already built, or an `nn.Module`. `source`: a registry
    model (fetched, or fed by `from_weights`),
    a checkpoint path, a state dict or an `nn.Module`.
    """
    if init not in adapters.INIT_POLICIES:
        raise UserInputError(f"--init {init!r}: choose one of {', '.join(adapters.INIT_POLICIES)}")
    if output_format not in (None, "pth", "safetensors"):
        raise UserInputError(f"--format {output_format!r}: choose pth or safetensors")
    clock = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    loaded = load_source(source, from_weights, trust_pickle, ema)
    lap("read source")
    kwargs = dict(kwargs or {})
    if isinstance(target, Target):  # already built (on the meta device), e.g. a bare architecture
        built = target
    elif isinstance(target, str):
        architecture = catalogues.architectures().get(target)
        infer = getattr(architecture.builder, "infer_kwargs", None) if architecture else None
        if infer is not None:
            kwargs = {**infer(loaded.spec or loaded.name, loaded.state_dict), **kwargs}
        built = build(target, kwargs, num_classes, in_chans)
    else:
        if num_classes is not None:
            adapters.replace_head(target, num_classes)
        if in_chans is not None:
            adapters.replace_stem(target, in_chans)
        built = Target(type(target).__name__, target, "module", kwargs=kwargs)
    model = built.model
    lap("build target")
    explicit = verify is True
    if verify is None:
        verify = loaded.spec is not None or loaded.model is not None
    if verify and loaded.spec is None and loaded.model is None:
        raise UserInputError("--verify needs a source architecture: name a registry model (with --from-weights)")
    source_model = (loaded.model or loaded.built()) if verify and not dry_run else None
    plan, tensors = plan_load(model, loaded, built.spec, rules, num_classes, in_chans, source_model)
    plan.notes[:0] = loaded.notes
    lap("plan")
    report = AdaptReport(
        built.spec, loaded.spec or loaded.name, loaded.file, loaded.sha256, built.kwargs, init, plan, timings=timings
    )
    check_plan(plan, report, strict, expect_missing, min_coverage)
    if dry_run:
        _finish(report, report_path)
        return model, report
    model.load_state_dict(with_metadata(tensors, model), strict=False, assign=True)
    _materialise_rest(model, plan, init, built)
    report.still_initial = still_initial(model, plan)
    lap("load")
    if verify:
        report.verify = check = _verify(built, loaded, num_classes, in_chans, plan, rtol=rtol, atol=atol)
        lap("verify")
        if check.status not in (INCONCLUSIVE, SKIPPED) and not check.passed:
            _finish(report, report_path)
            raise VerifyError(
                f"verification failed ({check.summary()}): max abs diff {check.max_abs:.3g}, "
                f"max rel diff {check.max_rel:.3g} (tolerance rtol {rtol:g}, atol {atol:g}); {check.reason}",
                report,
            )
        if explicit and check.status in (INCONCLUSIVE, SKIPPED):
            _finish(report, report_path)
            raise InconclusiveError(f"--verify: the proof is {check.status}: {check.reason}", report)
    if output is not None:
        report.output = str(save_state_dict(model, output, output_format))
        lap("save")
    _finish(report, report_path)
    return model, report


def _finish(report: AdaptReport, report_path: str | os.PathLike | None) -> None:
    if report_path is not None:
        report.write_json(report_path)
