"""`zoo.export(...)`: build, export, simplify, convert, verify and write one model; returns an ExportReport."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError, ZooError
from zoo.exporting import verify as verifying
from zoo.exporting.errors import VerificationError
from zoo.exporting.exporters import ExportSpec, export_module
from zoo.exporting.metadata import metadata_for, set_metadata
from zoo.exporting.report import ExportReport, ShapeCheck, Verification
from zoo.exporting.simplify import simplify as run_simplify
from zoo.exporting.writing import Staged, stage

if TYPE_CHECKING:
    import onnx
    from torch import nn

SEED = 0
DEFAULT_INPUT = (1, 3, 224, 224)
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
    kwargs: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export MODEL (a zoo.targets spec or a module) to ONNX at `output`; raise ExportError/VerificationError.

    `weights`: None (the registry default; random for other targets), "none", a weight tag or a file.
    Nothing is written at `output` unless export (and verification, when asked) succeeded.
    """
    step = progress or (lambda _message: None)
    start = time.perf_counter()
    device = _check_device(device)
    output = Path(output)
    if output.suffix != ".onnx":
        raise UserInputError(f"output {str(output)!r} should end in .onnx")
    seconds: dict[str, float] = {}

    step("building the model")
    from zoo.exporting.source import load_source

    source = load_source(model, weights, kwargs)
    net = source.model.eval().to(device)
    shape = tuple(input_shape or ((1, *source.input_size) if source.input_size else DEFAULT_INPUT))
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise UserInputError(f"--input {'x'.join(map(str, shape))}: give a shape such as 1x3x224x224")
    example_shape = (max(2, shape[0]), *shape[1:]) if dynamic_batch else shape  # batch 1 would be specialised
    example = verifying.make_inputs([example_shape], seed=SEED + 1)[0].to(device)
    shapes = verifying.check_shapes(shape, dynamic_batch, dynamic_hw)
    inputs = verifying.make_inputs(shapes, seed=SEED)
    seconds["load"] = time.perf_counter() - start

    tick = time.perf_counter()
    step("running PyTorch for reference outputs")
    references, names = _reference(net, inputs if verify else [example.cpu()], device)
    degenerate = verify and verifying.is_degenerate(references)
    seconds["reference"] = time.perf_counter() - tick

    spec = ExportSpec(example, dynamic_batch, dynamic_hw, ["input"], names, opset)
    step("exporting to ONNX")
    built = _build(net, spec, exporter, simplify, fp16, verify, seconds)
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
        input_names=["input"],
        output_names=names,
        device=device,
        fp16=fp16,
        simplified=built.candidates[0][0] == "simplified",
        simplify_note=built.simplify_note,
        nodes_before=built.nodes_before,
        nodes_after=built.nodes_after,
        seconds=seconds,
    )
    metadata = metadata_for(
        report.model,
        source.weights,
        source.weights_sha256,
        list(shape),
        source.mean,
        source.std,
        built.exporter,
        built.opset,
        fp16,
    )
    for _, proto in built.candidates:
        set_metadata(proto, metadata)

    staged: Staged | None = None
    try:
        if verify:
            step("verifying with onnxruntime")
            tick = time.perf_counter()
            default_atol, default_rtol = verifying.DEFAULT_TOLERANCES["fp16" if fp16 else "fp32"]
            tolerances = (default_atol if atol is None else atol, default_rtol if rtol is None else rtol)
            if degenerate:
                report.notes.append(
                    "the model's outputs are near zero or constant with these weights: verified the same "
                    f"export pipeline on a copy with seeded non-trivial weights (seed {SEED}) instead"
                )
                clone = copy.deepcopy(net)
                verifying.seed_weights(clone, SEED)
                references, _ = _reference(clone, inputs, device)
                fixed = ExportSpec(example, dynamic_batch, dynamic_hw, ["input"], names, opset)
                check_built = _build(clone, fixed, built.exporter, simplify, fp16, True, {})
                index, verification, _ = _verify(
                    check_built, inputs, references, names, tolerances, device, fp16, output, external_data, keep=False
                )
            else:
                index, verification, staged = _verify(
                    built, inputs, references, names, tolerances, device, fp16, output, external_data, keep=True
                )
            verification.degenerate_reference = degenerate
            verification.seeded_weights = SEED if degenerate else None
            verification.seconds = time.perf_counter() - tick
            seconds["verify"] = verification.seconds
            report.verification = verification
            if not verification.passed:
                raise VerificationError(_failure(verification, output), report)
            if index == 1:
                report.simplified = False
                report.simplify_note = "onnxsim changed the results: kept the unsimplified model"
                report.nodes_after = report.nodes_before
        else:
            index = 0
        tick = time.perf_counter()
        step("writing")
        if staged is None:
            staged = stage(built.candidates[index][1], output, external_data)
        report.size_bytes = staged.commit()
        report.external_data = output.name + ".data" if staged.data is not None else None
        staged = None
        seconds["write"] = time.perf_counter() - tick
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


def _reference(net: nn.Module, inputs: list, device: str) -> tuple[list, list[str]]:
    import torch

    with torch.no_grad():
        try:
            outputs = net(inputs[0].to(device))
        except Exception as exc:  # noqa: BLE001 - a model that cannot run on the input: say so in one line
            shape = "x".join(map(str, inputs[0].shape))
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserInputError(f"the model fails on an input of shape {shape} ({first}); check --input") from exc
        _, names = verifying.flatten_outputs(outputs)
    return verifying.reference_outputs(net, inputs, device), names


def _build(net, spec: ExportSpec, exporter: str, simplify: bool, fp16: bool, verify: bool, seconds: dict) -> _Built:
    exported = export_module(net, spec, exporter)
    seconds["export"] = exported.seconds
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


def _verify(built: _Built, inputs, references, names, tolerances, device, fp16, output, policy, keep: bool):
    """Verify candidates in order; the index of the first that passes (else 0), its Verification, its staging."""
    failures: list[Verification] = []
    for index, (_, proto) in enumerate(built.candidates):
        staged = stage(proto, output, policy)
        try:
            sess, provider, level = verifying.session(str(staged.model), device, fp16)
            checks = verifying.compare(sess, inputs, references, names, *tolerances)
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
            ort_optimization=level,
        )
        if verification.passed:
            if not keep:
                staged.discard()
            return index, verification, staged if keep else None
        staged.discard()
        failures.append(verification)
    return 0, failures[0], None


def _failure(verification: Verification, output: Path) -> str:
    worst: tuple[ShapeCheck, Any] | None = None
    for check in verification.checks:
        for out in check.outputs:
            if not out.passed and (worst is None or out.max_abs > worst[1].max_abs):
                worst = (check, out)
    assert worst is not None
    check, out = worst
    shape = "x".join(map(str, check.input_shape))
    return (
        f"the ONNX model disagrees with PyTorch: output {out.name!r} at input {shape} has max abs diff "
        f"{out.max_abs:.3g} (cosine {out.cosine:.6f}) beyond atol {verification.atol:g} + rtol {verification.rtol:g}; "
        f"{output} was not written (raise --atol/--rtol, or --no-verify to write it anyway)"
    )
