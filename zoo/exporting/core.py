"""`zoo.export(...)`: build, export, simplify, convert, verify and write one model; returns an ExportReport."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import tasks
from zoo.errors import UserInputError, ZooError
from zoo.exporting import verify as verifying
from zoo.exporting.errors import VerificationError
from zoo.exporting.exporters import ExportSpec, export_module, summarise
from zoo.exporting.metadata import metadata_for, set_metadata
from zoo.exporting.report import ExportReport, RuntimeCheck, ShapeCheck, Verification
from zoo.exporting.simplify import simplify as run_simplify
from zoo.exporting.writing import Staged, stage
from zoo.numerics import explodes, grid_step, is_degenerate

if TYPE_CHECKING:
    import onnx
    from torch import nn

SEED = 0
# fbgemm and onnxruntime round differently, and the differences add up layer after layer: measured, outputs
# apart by up to 2 int8 steps of the output scale (quantized_resnet18: 2 of 3,000 logits; quantized_resnet50
# 1.05 steps). Three steps fail.
QUANTIZED_STEPS = 2.5
DEVICES = ("cpu", "cuda")


@dataclass
class _Built:
    exporter: str
    opset: int
    fallback_reason: str | None
    nodes_before: int
    nodes_after: int
    simplify_note: str | None
    candidates: list[tuple[str, onnx.ModelProto]]  # ("simplified"|"unsimplified", model), preferred first


def export(
    model: str | nn.Module,
    output: str | Path,
    *,
    weights: str | None = None,
    task: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    opset: int | None = None,
    exporter: str = "auto",
    simplify: bool = True,
    fp16: bool = False,
    device: str = "cpu",
    verify: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    external_data: str = "auto",
    runtimes: Sequence[str] = (),
    kwargs: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export MODEL (a zoo.targets spec or a module) to ONNX at `output`; raise ExportError/VerificationError.

    `weights`: None (the registry default; random for other targets), "none", a weight tag or a file.
    `task`: one of zoo.tasks (default: the registry entry's, else classification). `runtimes`: runtimes to
    verify in besides onnxruntime (`openvino`, `opencv`, or a plugin's). With random weights whose outputs are
    degenerate, seeded weights are set before the one export. Nothing is written at `output` unless export
    (and verification, when asked) succeeded.
    """
    step = progress or (lambda _message: None)
    start = time.perf_counter()
    output = Path(output)
    if output.suffix != ".onnx":
        raise UserInputError(f"output {str(output)!r} should end in .onnx")
    import onnx  # noqa: F401 - what every export needs (a warm worker has them already): timed on its own
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401

    seconds: dict[str, float] = {"imports": time.perf_counter() - start}
    device = _check_device(device)
    from zoo.exporting.runtimes import resolve

    if runtimes and not verify:
        raise UserInputError("--runtime verifies the file in more runtimes: leave out --no-verify")
    chosen = resolve(runtimes) if verify else []

    step("building the model")
    from zoo.exporting.source import load_source

    source = load_source(model, weights, kwargs)
    task = tasks.task_of(source.target.selection, task)
    family = tasks.family(task)
    net = source.model.eval()
    quantized = tasks.is_quantized(net)
    if quantized and (device != "cpu" or fp16):
        raise UserInputError("a quantized model runs on the CPU only, in int8: leave out --device cuda and --fp16")
    net = net.to(device)
    shape = tasks.check_shape(task, input_shape or tasks.default_shape(task, source.input_size))
    notes = tasks.limits(task, dynamic_batch, shape)
    dynamic_batch = dynamic_batch and family.batch
    module = tasks.exportable(task, net)
    random = source.weights == "none"
    if random:
        notes += tasks.random_weights_ready(task, net)
    example_shape = (max(2, shape[0]), *shape[1:]) if dynamic_batch else shape  # batch 1 would be specialised
    example = tuple(x.to(device) for x in tasks.make_inputs(task, example_shape, seed=SEED + 100))
    inputs = tasks.check_inputs(task, shape, dynamic_batch, dynamic_hw, seed=SEED) if verify else []
    seconds["build"] = time.perf_counter() - start - seconds["imports"]

    tick = time.perf_counter()
    step("running PyTorch for reference outputs")
    seeded = None
    if verify and random and task == "detection":
        verifying.seed_weights(net, SEED)
        seeded = SEED
        notes.append(
            f"random weights: a detector is exported with seeded weights (seed {SEED}); with torchvision's random "
            "init its boxes hinge on float rounding (keypointrcnn_resnet50_fpn: pairs 34 px apart between runtimes)"
        )
    references, names = _reference(module, inputs or [tuple(x.cpu() for x in example)], device)
    degenerate = verify and is_degenerate(a for outputs in references for a in outputs)
    exploded = explodes(a for outputs in references for a in outputs) if verify and task != "detection" else None
    if (degenerate or exploded) and random and not quantized and seeded is None:
        verifying.seed_weights(net, SEED)
        seeded = SEED
        references, names = _reference(module, inputs, device)
        what = "empty, near-zero or constant outputs" if degenerate else f"outputs of {exploded:.2g}"
        degenerate = is_degenerate(a for outputs in references for a in outputs)
        exploded = explodes(a for outputs in references for a in outputs) if task != "detection" else None
        notes.append(
            f"random weights gave {what}: exported with seeded weights (seed {SEED}) "
            "so that verification compares something"
        )
    if degenerate:
        notes.append("PyTorch's outputs are empty, near zero or constant with these weights: agreement proves little")
    if exploded:
        notes.append(
            f"PyTorch's outputs reach {exploded:.2g} with these weights: at that scale float32 rounding alone "
            "nears the absolute tolerance"
        )
    seconds["reference"] = time.perf_counter() - tick

    axes, output_axes = tasks.axes(task, dynamic_batch, dynamic_hw)
    spec = ExportSpec(example, axes, output_axes, list(family.input_names), names, opset)
    step("exporting to ONNX")
    built = _build(module, spec, exporter, simplify, fp16, verify, seconds)
    report = ExportReport(
        model=model if isinstance(model, str) else source.target.spec,
        output=str(output),
        exporter=built.exporter,
        opset=built.opset,
        fallback_reason=built.fallback_reason,
        weights=source.weights,
        weights_sha256=source.weights_sha256,
        input_shape=list(shape),
        dynamic_batch=dynamic_batch,
        dynamic_hw=dynamic_hw,
        input_names=list(family.input_names),
        output_names=names,
        device=device,
        fp16=fp16,
        simplified=built.candidates[0][0] == "simplified",
        simplify_note=built.simplify_note,
        nodes_before=built.nodes_before,
        nodes_after=built.nodes_after,
        task=task,
        quantized=quantized,
        seconds=seconds,
        notes=notes,
    )
    metadata = metadata_for(
        report.model,
        source.weights if seeded is None else f"none (seeded {seeded})",
        source.weights_sha256,
        list(shape),
        source.mean,
        source.std,
        built.exporter,
        built.opset,
        fp16,
    )
    for _, proto in built.candidates:
        set_metadata(proto, metadata | {"zoo.task": task})

    staged: Staged | None = None
    try:
        index = 0
        if verify:
            step("verifying with onnxruntime")
            tick = time.perf_counter()
            precision = "fp16" if fp16 else ("quantized" if quantized else "fp32")
            default_atol, default_rtol = verifying.DEFAULT_TOLERANCES[precision]
            if precision == "fp32" and family.fp32_atol is not None:
                default_atol = family.fp32_atol
            int8_step = grid_step(a for outputs in references for a in outputs) if quantized else None
            if int8_step is not None:  # fbgemm and onnxruntime may round an output one int8 step apart
                default_atol = max(default_atol, QUANTIZED_STEPS * int8_step)
            tolerances = (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)
            checked = (task, inputs, references, names, tolerances)
            where = (device, fp16, output, external_data)
            index, verification, staged = _verify(built, checked, where, chosen[0], seconds)
            verification.degenerate_reference = degenerate
            verification.seeded_weights = seeded
            if verification.passed and staged is not None:
                for name, runtime in chosen[1:]:
                    step(f"verifying with {name}")
                    check = _other_runtime(name, runtime, staged, task, inputs, references, names, tolerances, device)
                    seconds[f"verify:{name}"] = check.seconds
                    verification.runtimes.append(check)
                verification.passed = all(r.passed for r in verification.runtimes)
            verification.seconds = time.perf_counter() - tick
            report.verification = verification
            if not verification.passed:
                raise VerificationError(_failure(verification, output), report)
            if index == 1:
                report.simplified = False
                report.simplify_note = "onnxsim changed the results: kept the unsimplified model"
                report.nodes_after = report.nodes_before
        tick = time.perf_counter()
        step("writing")
        if staged is None:
            staged = stage(built.candidates[index][1], output, external_data)
        report.size_bytes = staged.commit()
        report.external_data = output.name + ".data" if staged.data is not None else None
        staged = None
        seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - tick  # staging counted above
    finally:
        if staged is not None:
            staged.discard()
    seconds["total"] = time.perf_counter() - start
    return report


def _check_device(device: str) -> str:
    import torch

    if device not in DEVICES:
        raise UserInputError(f"--device must be cpu or cuda, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        built = "built without CUDA" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
        raise ZooError(f"--device cuda: CUDA is not available (torch {torch.__version__}, {built}); use --device cpu")
    return device


def _reference(module: nn.Module, inputs: list[tuple], device: str) -> tuple[list, list[str]]:
    """PyTorch's outputs at every input and the output names; a model that cannot run on the input is one line."""
    try:
        return verifying.reference_outputs(module, inputs, device)
    except ZooError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that cannot run on the input: say so in one line
        shape = "x".join(map(str, inputs[0][0].shape))
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserInputError(f"the model fails on an input of shape {shape} ({first}); check --input") from exc


def _build(net, spec: ExportSpec, exporter: str, simplify: bool, fp16: bool, verify: bool, seconds: dict) -> _Built:
    exported = export_module(net, spec, exporter)
    seconds["export"] = exported.seconds
    if exported.optimize_seconds:
        seconds["optimize"] = exported.optimize_seconds
    candidates: list[tuple[str, onnx.ModelProto]] = []
    from zoo.exporting.simplify import count_nodes

    before = after = count_nodes(exported.proto)
    note = None
    if simplify:
        result = run_simplify(exported.proto, check=not verify)
        seconds["simplify"] = result.seconds
        before, after, note = result.nodes_before, result.nodes_after, result.note
        if result.proto is not None:
            candidates.append(("simplified", result.proto))
    if not candidates or verify:  # the unsimplified model is the fallback when simplification changes results
        candidates.append(("unsimplified", exported.proto))
    if fp16:
        from zoo.exporting.fp16 import to_fp16

        tick = time.perf_counter()
        candidates = [(label, to_fp16(proto)) for label, proto in candidates]
        seconds["fp16"] = time.perf_counter() - tick
    return _Built(exported.exporter, exported.opset, exported.fallback_reason, before, after, note, candidates)


def _verify(built: _Built, checked: tuple, where: tuple, runtime, seconds: dict):
    """Verify candidates in onnxruntime in order; the index of the first that passes (else 0), its Verification
    and its staging (None when none passed). `seconds` gets session creation, the runs and the staging write."""
    failures: list[Verification] = []
    task, inputs, references, names, tolerances = checked
    device, fp16, output, policy = where
    _, open_session = runtime
    for index, (_, proto) in enumerate(built.candidates):
        tick = time.perf_counter()
        staged = stage(proto, output, policy)
        seconds["write"] = seconds.get("write", 0.0) + time.perf_counter() - tick
        try:
            tick = time.perf_counter()
            sess = open_session(str(staged.model), device=device, fp16=fp16)
            opened = time.perf_counter()
            checks = verifying.compare(sess, task, inputs, references, names, *tolerances)
            seconds["session"] = seconds.get("session", 0.0) + opened - tick
            seconds["verify"] = seconds.get("verify", 0.0) + time.perf_counter() - opened
            provider = getattr(sess, "provider", getattr(sess, "label", "onnxruntime"))
            optimization = getattr(sess, "optimization", "all")
            del sess
        except BaseException:
            staged.discard()
            raise
        verification = Verification(
            passed=all(c.passed for c in checks),
            atol=tolerances[0],
            rtol=tolerances[1],
            provider=provider,
            reference_device=device,
            checks=checks,
            ort_optimization=optimization,
            task=task,
        )
        if verification.passed:
            return index, verification, staged
        staged.discard()
        failures.append(verification)
    return 0, failures[0], None


def _other_runtime(name, runtime, staged: Staged, task, inputs, references, names, tolerances, device) -> RuntimeCheck:
    """Verify the chosen file in one more runtime; a runtime that cannot load or run it fails, with its message."""
    tick = time.perf_counter()
    label = name
    try:
        sess = runtime(str(staged.model), device=device, fp16=False)
        label = getattr(sess, "label", name)
        checks = verifying.compare(sess, task, inputs, references, names, *tolerances)
    except ZooError:
        raise
    except Exception as exc:  # noqa: BLE001 - the runtime's own failure is the result: report it
        return RuntimeCheck(name, label, False, [], summarise(exc), time.perf_counter() - tick)
    return RuntimeCheck(name, label, all(c.passed for c in checks), checks, None, time.perf_counter() - tick)


def _failure(verification: Verification, output: Path) -> str:
    fix = f"{output} was not written (raise --atol/--rtol, or --no-verify to write it anyway)"
    if not all(c.passed for c in verification.checks):
        return _disagreement("onnxruntime", verification.checks, verification, fix)
    for runtime in verification.runtimes:
        if runtime.error:
            return (
                f"{runtime.label} could not run the ONNX model ({runtime.error}); {output} was not written "
                f"(leave out --runtime {runtime.name} to write it)"
            )
        if not runtime.passed:
            return _disagreement(runtime.label, runtime.checks, verification, fix)
    raise AssertionError("a failed verification names a failing runtime")


def _disagreement(who: str, checks: list[ShapeCheck], verification: Verification, fix: str) -> str:
    worst = None
    for check in checks:
        for out in check.outputs:
            if not out.passed and (worst is None or out.max_abs > worst[1].max_abs):
                worst = (check, out)
    assert worst is not None
    check, out = worst
    shape = "x".join(map(str, check.input_shape))
    extra = f", {out.note}" if out.note else ""
    matched = f", {out.matched:.0%} of detections matched" if out.matched is not None else ""
    return (
        f"{who} disagrees with PyTorch: output {out.name!r} at input {shape} has max abs diff "
        f"{out.max_abs:.3g} (cosine {out.cosine:.6f}{matched}{extra}) beyond atol {verification.atol:g} + "
        f"rtol {verification.rtol:g}; {fix}"
    )
