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
    and the outputs' names (zoo.tasks.flatten)."""
    import torch

    from zoo.tasks import flatten

    results, names = [], []
    with torch.no_grad(), no_tf32():
        for args in inputs:
            tensors, names = flatten(model(*(x.to(device) for x in args)))
            results.append([_numpy(t) for t in tensors])
    return results, names


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
