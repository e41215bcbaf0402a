"""`zoo.profile`: parameters, MACs/FLOPs, per-module shapes and latency of a model at given input sizes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import UserInputError, ZooError
from zoo.profiling.counting import Count, LayerCount, count_macs
from zoo.profiling.formulas import Formulas, all_formulas
from zoo.profiling.latency import Latency, measure_latency
from zoo.profiling.params import ParamStats, param_stats
from zoo.targets import on_meta

DEFAULT_INPUT = (1, 3, 224, 224)  # a classifier's; other tasks' defaults are in zoo.tasks


@dataclass(frozen=True)
class Profile:
    """One model at one input size. MACs are multiply-accumulates; FLOPs = 2 x MACs."""

    model: str
    input_shape: tuple[int, ...]
    params: ParamStats
    count: Count
    latency: Latency | None = None
    weights: str | None = None
    top1: float | None = None
    published_gmacs: float | None = None  # the registry's figure at the weights' own input size

    @property
    def macs(self) -> int:
        return self.count.macs

    @property
    def flops(self) -> int:
        return self.count.flops

    @property
    def gmacs(self) -> float:
        return self.count.macs / 1e9

    def layers(self, depth: int | None = None) -> list[LayerCount]:
        """Modules down to `depth` (all when None), the model itself excluded."""
        return [layer for layer in self.count.layers if layer.depth and (depth is None or layer.depth <= depth)]

    def to_dict(self, depth: int | None = None, per_layer: bool = False, stages: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "weights": self.weights,
            "params": {
                "total": self.params.total,
                "trainable": self.params.trainable,
                "buffers": self.params.buffers,
                "size_mb": round(self.params.size_mb, 3),
                "size_mb_by_dtype": {k: round(v, 3) for k, v in self.params.size_mb_by_dtype.items()},
            },
            "macs": self.macs,
            "flops": self.flops,
            "gmacs": round(self.gmacs, 4),
            "fvcore_macs": self.count.fvcore_macs,
            "macs_by_op": self.count.by_op,
            "uncounted_ops": self.count.uncounted,
            "output_shape": self.count.output_shape,
            "counted_on": self.count.device,
            "published_gmacs": self.published_gmacs,
            "top1": self.top1,
            "latency": None if self.latency is None else vars(self.latency),
        }
        if per_layer or depth is not None:
            data["layers"] = [vars(layer) for layer in self.layers(depth)]
        if stages:
            data["stages"] = [
                {"name": s.name, "type": s.type, "output_shape": s.output_shape} for s in self.count.stages()
            ]
        return data


@dataclass
class Prepared:
    """A model ready to profile: its label, module and registry record (when it has one)."""

    name: str
    module: Any
    selection: Any = None
    weights: str | None = None
    given_task: str | None = None  # --task; None: the registry entry's (zoo.tasks.task_of)
    from_spec: bool = True  # built from a MODEL spec (so it can be built again with real weights)
    kwargs: dict[str, Any] | None = None  # the builder arguments it was built with

    @property
    def task(self) -> str:
        from zoo import tasks

        return tasks.task_of(self.selection, self.given_task)

    @property
    def default_input(self) -> tuple[int, ...]:
        from zoo import tasks

        weights = getattr(self.selection, "weights", None)
        return tasks.default_shape(self.task, getattr(weights, "input_size", None))


def prepare(
    spec: str,
    *,
    weights: str | None = None,
    device: str = "cpu",
    kwargs: dict[str, Any] | None = None,
    real: bool = False,
) -> Prepared:
    """Build `spec` (anything `zoo adapt` accepts) and load `weights` (a tag, a file, or None/"none").

    Without weights and without `real`, the model is built on the meta device: no memory, no init cost.
    """
    from zoo.targets import build_target

    check_device(device)
    weights = None if weights in (None, "", "none") else weights
    if weights is None and not real:
        try:
            target = build_target(spec, kwargs, meta_device=True)
            return Prepared(spec, target.model, target.selection, kwargs=kwargs)
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            pass  # a builder that computes with tensors (RegNet's widths): only the weights go to meta
        try:
            with meta_weights():
                target = build_target(spec, kwargs)
            return Prepared(spec, target.model, target.selection, kwargs=kwargs)
        except (NotImplementedError, RuntimeError, TypeError, ValueError):
            pass  # a builder that initialises in place with real data: build it normally
    target = build_target(spec, kwargs)
    model = target.model
    if weights is not None:
        _load_weights(model, spec, target.selection, weights)
    return Prepared(spec, model.to(device), target.selection, weights, kwargs=kwargs)


@contextmanager
def meta_weights() -> Iterator[None]:
    """Move each parameter and buffer to the meta device as a module registers it, so init costs nothing."""
    from torch import nn

    register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

    def parameter(module, name, param):
        if param is not None and not param.is_meta:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register_parameter(module, name, param)

    def buffer(module, name, tensor, persistent=True):
        register_buffer(module, name, None if tensor is None else tensor.to("meta"), persistent)

    nn.Module.register_parameter, nn.Module.register_buffer = parameter, buffer
    try:
        yield
    finally:
        nn.Module.register_parameter, nn.Module.register_buffer = register_parameter, register_buffer


def _load_weights(model: Any, spec: str, selection: Any, weights: str) -> None:
    from zoo.weights import loading

    path = Path(weights).expanduser()
    if path.is_file():
        loading.load_into(model, loading.load_checkpoint(path).loadable(), str(path))
        return
    if selection is None:
        raise UserInputError(
            f"--weights {weights!r} is not a file, and {spec!r} is not a registry model whose weight tags it could name"
        )
    from zoo.api import resolve

    loading.load_pretrained(model, resolve(f"{selection.entry.qualified_name}.{weights}"))


def check_device(device: str) -> None:
    """Raise a UserInputError when `device` is not usable here (e.g. cuda on a machine without it)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserInputError("--device cuda: CUDA is not available here (no GPU or a CPU-only torch); use --device cpu")
    if not (device == "cpu" or device.startswith("cuda")):
        raise UserInputError(f"--device {device!r}: use cpu or cuda")


def profile(
    model: Any,
    input_shape: tuple[int, ...] | None = None,
    *,
    weights: str | None = None,
    device: str = "cpu",
    latency: bool = False,
    runs: int = 50,
    warmup: int = 10,
    threads: int | None = None,
    kwargs: dict[str, Any] | None = None,
    formulas: Formulas | None = None,
    task: str | None = None,
) -> Profile:
    """Profile `model` (a MODEL spec, a `Prepared` or an `nn.Module`) at `input_shape` (default: its weights' size).

    The input is the task's (zoo.tasks: images, a list of images for detection, clips, image pairs for optical
    flow). Counting runs on the meta device (on real weights when the model computes on its values, as a
    detector's box selection does); `latency` times real forward passes on `device`.
    """
    from zoo import tasks

    prepared = _prepared(model, weights, device, kwargs, real=latency)
    if task is not None:
        prepared.given_task = task
    if latency and on_meta(prepared.module):
        prepared = _real(prepared, weights, device, kwargs)
    shape = tasks.check_shape(prepared.task, input_shape or prepared.default_input)
    inputs = tasks.make_inputs(prepared.task, shape)
    try:
        try:
            count = count_macs(
                tasks.exportable(prepared.task, prepared.module), inputs, formulas=formulas or all_formulas()
            )
        except ZooError:
            if not (on_meta(prepared.module) and prepared.from_spec):
                raise
            prepared = _real(prepared, weights, device, kwargs)  # it computes on its weights' values
            count = count_macs(
                tasks.exportable(prepared.task, prepared.module), inputs, formulas=formulas or all_formulas()
            )
    except ZooError:
        raise
    except Exception as exc:  # noqa: BLE001 - the model's own forward rejected the input
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserInputError(
            f"{prepared.name} cannot run on input {'x'.join(map(str, shape))}: {message}; "
            "check --input, or pass builder arguments with --arg (e.g. --arg image_size=448 for a ViT)"
        ) from exc
    timing = None
    if latency:
        module = tasks.exportable(prepared.task, prepared.module)
        timing = measure_latency(module, tuple(x.to(device) for x in inputs), runs=runs, warmup=warmup, threads=threads)
    wset = getattr(prepared.selection, "weights", None)
    return Profile(
        model=prepared.name,
        input_shape=shape,
        params=param_stats(prepared.module),
        count=count,
        latency=timing,
        weights=prepared.weights,
        top1=getattr(wset, "top1", None),
        published_gmacs=getattr(wset, "gmacs", None),
    )


def _real(prepared: Prepared, weights: str | None, device: str, kwargs: dict | None) -> Prepared:
    """`prepared` built again with real (random or loaded) weights, keeping its task."""
    real = prepare(prepared.name, weights=weights, device=device, kwargs=kwargs or prepared.kwargs, real=True)
    real.given_task = prepared.given_task
    return real


def _prepared(model: Any, weights: str | None, device: str, kwargs: dict | None, real: bool) -> Prepared:
    if isinstance(model, Prepared):
        return model
    if isinstance(model, str):
        return prepare(model, weights=weights, device=device, kwargs=kwargs, real=real)
    check_device(device)
    return Prepared(type(model).__name__, model if on_meta(model) else model.to(device), from_spec=False)
