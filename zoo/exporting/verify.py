"""Compare an ONNX model in onnxruntime with the PyTorch module in eval mode, output by output."""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any

from zoo.exporting.report import ShapeCheck

if TYPE_CHECKING:
    import numpy as np
    import torch

DEFAULT_TOLERANCES = {"fp32": (1e-4, 1e-3), "fp16": (5e-2, 5e-2), "quantized": (5e-2, 5e-2)}  # (atol, rtol)


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


def reference_outputs(
    model: torch.nn.Module, inputs: list[tuple[torch.Tensor, ...]], device: str
) -> tuple[list[list[np.ndarray]], list[str]]:
    """PyTorch's outputs (eval, no_grad, TF32 off) for each input tuple, as numpy arrays (floats as float32),
    and the outputs' names (zoo.tasks.flatten).

    Inputs that are the first rows of a later one (zoo.tasks.check_inputs' batch 1 and 2 of batch 3) take the
    first rows of its outputs, once the smallest of them, run on its own, agrees with its rows (a model whose
    eval outputs depend on the batch gets every input run).
    """
    import torch

    from zoo.tasks import flatten

    def run(args) -> tuple[list[np.ndarray], list[str], list]:
        tensors, names = flatten(model(*(x.to(device) for x in args)))
        return [_numpy(t) for t in tensors], names, tensors

    results: dict[int, list[np.ndarray]] = {}
    names: list[str] = []
    with torch.no_grad(), no_tf32():
        for index in reversed(range(len(inputs))):
            if index in results:
                continue
            results[index], names, tensors = run(inputs[index])
            batch = inputs[index][0].shape[0] if inputs[index][0].dim() else 0
            if not all(t.dim() and t.shape[0] == batch for t in tensors):
                continue
            prefixes = {i: rows for i in range(index) if (rows := _prefix_rows(inputs[i], inputs[index]))}
            if not prefixes:
                continue
            smallest = min(prefixes, key=prefixes.get)
            own, _, _ = run(inputs[smallest])
            rows = [r[: prefixes[smallest]] for r in results[index]]
            if not all(_close(a, b) for a, b in zip(own, rows, strict=True)):
                continue  # batch-dependent outputs: each input is run
            for i, count in prefixes.items():
                results[i] = own if i == smallest else [r[:count] for r in results[index]]
    return [results[i] for i in range(len(inputs))], names


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    import numpy as np

    if a.shape != b.shape:
        return False
    if not np.issubdtype(a.dtype, np.floating):
        return bool(np.array_equal(a, b))
    scale = max(1.0, float(np.nanmax(np.abs(b)))) if b.size else 1.0
    return bool(np.allclose(a, b, rtol=1e-4, atol=1e-5 * scale, equal_nan=True))


def _prefix_rows(candidate: tuple, full: tuple) -> int:
    """The number of rows when every tensor of `candidate` is the first rows of the same tensor of `full`."""
    if len(candidate) != len(full):
        return 0
    for part, whole in zip(candidate, full, strict=True):
        if part.dim() == 0 or part.shape[1:] != whole.shape[1:] or part.shape[0] >= whole.shape[0]:
            return 0
        if part.data_ptr() != whole.data_ptr() or part.stride() != whole.stride():
            return 0
    return candidate[0].shape[0]


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.is_floating_point() else tensor).numpy()


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
    options.log_severity_level = 3  # errors only: its warnings (unused initializers) are not the user's business
    level = "extended" if fp16 else "all"
    if fp16:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sess = ort.InferenceSession(path, options, providers=providers)
    return sess, sess.get_providers()[0], level


def compare(
    sess: Any,
    task: str,
    inputs: list[tuple[torch.Tensor, ...]],
    references: list[list[np.ndarray]],
    names: list[str],
    atol: float,
    rtol: float,
) -> list[ShapeCheck]:
    """Run a runtime's session (`run(feeds)`) on each input and compare its outputs with PyTorch's (zoo.tasks)."""
    from zoo.tasks import compare as compare_outputs

    checks = []
    for args, refs in zip(inputs, references, strict=True):
        feeds = {name: x.numpy() for name, x in zip(sess.input_names, args, strict=True)}
        got = sess.run(feeds)
        checks.append(ShapeCheck(list(args[0].shape), compare_outputs(task, names, list(got), refs, atol, rtol)))
    return checks
