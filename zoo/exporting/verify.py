"""Compare an ONNX model in onnxruntime with the PyTorch module in eval mode, output by output."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError
from zoo.exporting.report import OutputCheck, ShapeCheck

if TYPE_CHECKING:
    import numpy as np
    import torch

DEFAULT_TOLERANCES = {"fp32": (1e-4, 1e-3), "fp16": (5e-2, 5e-2)}  # (atol, rtol)
_DEGENERATE = 1e-6


def check_shapes(input_shape: tuple[int, ...], dynamic_batch: bool, dynamic_hw: bool) -> list[tuple[int, ...]]:
    """Batch 1, 2 and 3 (just the given shape when static), plus a second H x W with `dynamic_hw`."""
    rest = tuple(input_shape[1:])
    shapes = [(b, *rest) for b in (1, 2, 3)] if dynamic_batch else [tuple(input_shape)]
    if dynamic_hw and len(rest) == 3:
        channels, height, width = rest
        shapes.append((shapes[-1][0], channels, height + 32, width + 32))
    return shapes


def make_inputs(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.Tensor]:
    """Seeded standard-normal inputs (what a normalised image looks like to the network), on the CPU."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for shape in shapes]


def flatten_outputs(outputs: Any) -> tuple[list[torch.Tensor], list[str]]:
    """The tensors of a (possibly nested) output in exporter order, and a name for each.

    A single tensor is `output`; dict keys give their names (`layer2`), sequences `output0`, `output1`, ...
    """
    import torch
    from torch.utils import _pytree as pytree

    if isinstance(outputs, torch.Tensor):
        return [outputs], ["output"]
    leaves, _ = pytree.tree_flatten_with_path(outputs)
    tensors, names = [], []
    for path, leaf in leaves:
        if not isinstance(leaf, torch.Tensor):
            raise UserInputError(f"the model returns a {type(leaf).__name__} among its outputs; ONNX needs tensors")
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        name = "_".join(parts)
        names.append(name if name and not name[0].isdigit() else f"output{name}")
        tensors.append(leaf)
    return tensors, names


@contextlib.contextmanager
def no_tf32():
    """cuDNN and cuBLAS use TF32 by default on Ampere and later, moving outputs by ~1e-3: off for references."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def reference_outputs(model: torch.nn.Module, inputs: list[torch.Tensor], device: str) -> list[list[np.ndarray]]:
    """PyTorch's outputs (eval, no_grad, TF32 off) for each input, as float32 numpy arrays."""
    import torch

    results = []
    with torch.no_grad(), no_tf32():
        for x in inputs:
            tensors, _ = flatten_outputs(model(x.to(device)))
            results.append([t.detach().float().cpu().numpy() for t in tensors])
    return results


def is_degenerate(references: list[list[np.ndarray]]) -> bool:
    """True when every output is near zero or constant: agreement with such a reference proves nothing."""
    import numpy as np

    for outputs in references:
        for ref in outputs:
            if ref.size and float(np.ptp(ref)) > _DEGENERATE * max(1.0, float(np.abs(ref).max())):
                return False
    return True


def seed_weights(model: torch.nn.Module, seed: int) -> None:
    """Overwrite floating-point parameters with seeded, non-trivial values (scale 1/sqrt(fan-in))."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.is_floating_point():
                continue
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if param.dim() >= 2:
                value = noise / math.sqrt(max(1, param[0].numel()))
            elif name.endswith("weight"):  # norm scales: around one
                value = 1.0 + 0.1 * noise
            else:
                value = 0.1 * noise
            param.copy_(value.to(param.dtype))


def session(path: str, device: str, fp16: bool) -> tuple[Any, str, str]:
    """An onnxruntime session: CUDA provider for `--device cuda` when installed, else CPU.

    fp16 models are built at ORT_ENABLE_EXTENDED: onnxruntime 1.32's CPU layout optimisations (ENABLE_ALL)
    crash the process (SIGSEGV) building a session for some fp16 transformer graphs.
    """
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as many as torch: convert's workers share the cores
    level = "extended" if fp16 else "all"
    if fp16:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = ort.InferenceSession(path, options, providers=providers)
    return sess, sess.get_providers()[0], level


def compare(
    sess: Any,
    inputs: list[torch.Tensor],
    references: list[list[np.ndarray]],
    names: list[str],
    atol: float,
    rtol: float,
) -> list[ShapeCheck]:
    """Run `sess` on each input and compare every output with its reference."""
    input_name = sess.get_inputs()[0].name
    checks = []
    for x, refs in zip(inputs, references, strict=True):
        got = sess.run(None, {input_name: x.numpy()})
        if len(got) != len(refs):
            raise UserInputError(f"the ONNX model has {len(got)} outputs, PyTorch {len(refs)}")
        outputs = [_compare_one(name, g, r, atol, rtol) for name, g, r in zip(names, got, refs, strict=True)]
        checks.append(ShapeCheck(list(x.shape), outputs))
    return checks


def _compare_one(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> OutputCheck:
    import numpy as np

    got = np.asarray(got, dtype=np.float32)
    if got.shape != ref.shape:
        return OutputCheck(name, list(ref.shape), math.inf, math.inf, 0.0, None, False)
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    g, r = got.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    norms = float(np.linalg.norm(g) * np.linalg.norm(r))
    cosine = float(g @ r / norms) if norms > 0 else (1.0 if max_abs == 0 else 0.0)
    top1 = float((got.argmax(1) == ref.argmax(1)).mean()) if ref.ndim >= 2 and ref.shape[1] > 1 else None
    passed = bool(np.all(np.isfinite(got))) and bool(np.all(diff <= atol + rtol * np.abs(ref)))
    return OutputCheck(name, list(ref.shape), max_abs, max_rel, cosine, top1, passed)
