"""Count the multiply-accumulates (MACs) of one forward pass at the aten level, per op and per module.

Counting runs on the meta device by default: no arithmetic is done, and attention takes the math path
(`bmm` + softmax), so fused kernels cannot hide work. Where an op has no meta kernel the pass is run
again on the model's own device with the `nn.MultiheadAttention` fast path switched off; the fused
attention kernels have formulas too. Ops that have no formula and are not known to be free of MACs
are listed in `Count.uncounted`, never silently taken as zero.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from zoo.errors import ZooError
from zoo.profiling.formulas import Formulas, all_formulas

# Ops that do no multiply-accumulate in the convention torchvision's tables use (normalisation,
# pooling, softmax, data movement, reductions, factories). Pointwise ops and views are free by tag.
FREE_OPS = frozenset(
    """
    native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional native_layer_norm native_group_norm batch_norm_elemt
    _softmax _safe_softmax _log_softmax softmax log_softmax
    max_pool1d max_pool2d max_pool3d max_pool2d_with_indices max_pool3d_with_indices
    avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d
    _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool2d adaptive_max_pool3d
    mean sum amax amin max min prod var var_mean std std_mean linalg_vector_norm norm cumsum logsumexp
    argmax argmin topk sort any all
    cat stack roll flip repeat tile constant_pad_nd reflection_pad1d reflection_pad2d replication_pad2d
    index index_select gather scatter scatter_add index_put index_put_ masked_fill masked_fill_ masked_scatter
    slice_scatter select_scatter embedding
    clone copy copy_ _to_copy contiguous detach lift_fresh lift_fresh_copy alias_copy _unsafe_view
    empty empty_like empty_strided new_empty new_empty_strided zeros zeros_like new_zeros ones ones_like
    new_ones full full_like new_full fill fill_ zero_ arange scalar_tensor linspace _local_scalar_dense
    native_dropout bernoulli bernoulli_ rand rand_like randn randn_like uniform_ normal_
    upsample_nearest1d upsample_nearest2d upsample_nearest3d upsample_bilinear2d upsample_bicubic2d
    _upsample_nearest_exact2d _upsample_bilinear2d_aa grid_sampler_2d
    pixel_shuffle pixel_unshuffle channel_shuffle native_channel_shuffle im2col col2im
    split split_with_sizes unbind chunk nonzero _assert_async sym_size sym_stride sym_numel
    relu relu6 hardtanh hardswish hardsigmoid silu gelu mish elu leaky_relu sigmoid tanh softplus glu
    """.split()
)


def _elements(tensor: Any) -> int:
    return math.prod(tensor.shape)


def _norm_extra(x: Any, weight: Any = None, *args: Any, **kwargs: Any) -> int:
    return _elements(x) * (5 if weight is not None else 4)


def _batch_norm_extra(x: Any, weight: Any = None, bias: Any = None, *args: Any, **kwargs: Any) -> int:
    training = next((a for a in args if isinstance(a, bool)), False)
    if training:
        return _norm_extra(x, weight)
    return _elements(x) * (2 if weight is not None else 1)


def _bn_eval_extra(x: Any, weight: Any = None, *args: Any, **kwargs: Any) -> int:
    return _elements(x) * (2 if weight is not None else 1)


def _layer_norm_extra(x: Any, shape: Any, weight: Any = None, *args: Any, **kwargs: Any) -> int:
    return _norm_extra(x, weight)


def _input_elements(x: Any, *args: Any, **kwargs: Any) -> int:
    return _elements(x)


# fvcore's defaults: normalisation, adaptive average pooling and upsampling, on top of the MACs.
FVCORE_EXTRA = {
    "aten::native_batch_norm": _batch_norm_extra,
    "aten::_native_batch_norm_legit": _batch_norm_extra,
    "aten::_native_batch_norm_legit_no_training": _bn_eval_extra,
    "aten::native_layer_norm": _layer_norm_extra,
    "aten::native_group_norm": _norm_extra,
    "aten::_adaptive_avg_pool2d": _input_elements,
    "aten::adaptive_avg_pool2d": _input_elements,
    "aten::mean": _input_elements,
    "aten::upsample_nearest2d": lambda *a, out=None, **k: _elements(out),
    "aten::upsample_bilinear2d": lambda *a, out=None, **k: 4 * _elements(out),
    "aten::grid_sampler_2d": lambda *a, out=None, **k: 4 * _elements(out),
}


@dataclass(frozen=True)
class LayerCount:
    """One module's share of a forward pass (`name` is "" for the model itself)."""

    name: str
    type: str
    depth: int
    output_shape: Any
    params: int
    macs: int
    calls: int


@dataclass(frozen=True)
class Count:
    """MACs of one forward pass; FLOPs are 2 x MACs for multiply-adds."""

    macs: int
    fvcore_macs: int  # MACs plus what fvcore also counts: normalisation, adaptive pooling, upsampling
    by_op: Mapping[str, int]
    uncounted: Mapping[str, int]  # op -> calls, for ops with no formula that may do arithmetic
    layers: tuple[LayerCount, ...]  # in the order modules were first called; uncalled ones last
    output_shape: Any
    device: str

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def stages(self) -> list[LayerCount]:
        """The model's top-level children that ran, in call order."""
        return [layer for layer in self.layers if layer.depth == 1 and layer.calls]


def shape_of(value: Any) -> Any:
    """A tensor's shape as a tuple; tuples, lists and dicts of tensors shape by shape."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return [shape_of(v) for v in value]
    if isinstance(value, Mapping):
        return {k: shape_of(v) for k, v in value.items()}
    return type(value).__name__


class _Recorder:
    """Module hooks keeping the stack of running modules; the dispatch mode adds MACs to it."""

    def __init__(self, model: Any, formulas: Formulas) -> None:
        self.formulas = formulas
        self.stack: list[str] = []
        self.inside_formula = 0
        self.macs: dict[str, int] = defaultdict(int)
        self.calls: Counter[str] = Counter()
        self.shapes: dict[str, Any] = {}
        self.order: list[str] = []
        self.names: dict[int, str] = {}
        self.module_formulas: dict[int, Any] = {}
        for name, module in model.named_modules():
            self.names[id(module)] = name
            self.module_formulas[id(module)] = self._module_formula(module)
        # Two global hooks, not two per module: registering hundreds of handles costs more than counting.
        from torch.nn.modules import module as module_hooks

        self.handles = [
            module_hooks.register_module_forward_pre_hook(self._pre),
            module_hooks.register_module_forward_hook(self._post),
        ]

    def _module_formula(self, module: Any):
        for cls in type(module).__mro__:
            if cls in self.formulas.modules:
                return self.formulas.modules[cls]
        return None

    def _pre(self, module: Any, args: Any) -> None:
        name = self.names.get(id(module))
        if name is None:
            return
        if name not in self.calls:
            self.order.append(name)
        self.calls[name] += 1
        self.stack.append(name)
        self.inside_formula += self.module_formulas[id(module)] is not None

    def _post(self, module: Any, args: Any, output: Any) -> None:
        name = self.names.get(id(module))
        if name is None:
            return
        self.stack.pop()
        self.shapes[name] = shape_of(output)
        formula = self.module_formulas[id(module)]
        if formula is not None:
            self.inside_formula -= 1
            if not self.inside_formula:
                self.add(f"module:{type(module).__name__}", int(formula(module, args, output)), [*self.stack, name])

    def add(self, op: str, macs: int, stack: Sequence[str] | None = None) -> None:
        self.by_op[op] += macs
        for name in self.stack if stack is None else stack:
            self.macs[name] += macs

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _mode_class():
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class MacMode(TorchDispatchMode):
        """Adds each op's MACs to the running modules; lists ops it cannot count."""

        def __init__(self, recorder: _Recorder, formulas: Formulas) -> None:
            super().__init__()
            self.recorder = recorder
            self.formulas = formulas
            self.kinds: dict[Any, tuple[str, Any, Any]] = {}
            self.uncounted: Counter[str] = Counter()
            self.extra = 0
            recorder.by_op = Counter()

        def _kind(self, func: Any) -> tuple[str, Any, Any]:
            name = func._overloadpacket._qualified_op_name
            formula = self.formulas.ops.get(name)
            if formula is None:
                short = name.partition("::")[2]
                free = func.is_view or short in FREE_OPS or bool(_FREE_TAGS & set(func.tags))
                free = free or short.rstrip("_") in FREE_OPS or name.startswith("prim::")
                kind = "free" if free else "unknown"
            else:
                kind = "count"
            return kind, formula, FVCORE_EXTRA.get(name)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            kind = self.kinds.get(func)
            if kind is None:
                kind = self.kinds[func] = self._kind(func)
            out = _meta_shortcut(func, args, kwargs)
            if out is None:
                out = func(*args, **kwargs)
            recorder = self.recorder
            if recorder.inside_formula:
                return out
            if kind[0] == "count":
                recorder.add(func._overloadpacket._qualified_op_name, int(kind[1](*args, out=out, **kwargs)))
            elif kind[0] == "unknown":
                self.uncounted[func._overloadpacket._qualified_op_name] += 1
            if kind[2] is not None:
                self.extra += int(kind[2](*args, out=out, **kwargs))
            return out

    _FREE_TAGS = {torch.Tag.pointwise, torch.Tag.inplace_view}
    aten = torch.ops.aten
    inplace: dict[Any, bool] = {}

    def _meta_shortcut(func: Any, args: tuple, kwargs: dict) -> Any:
        """Results whose shape is plain, without torch's Python meta kernels (a third of counting time)."""
        first = args[0] if args else None
        if not isinstance(first, torch.Tensor) or not first.is_meta:
            return None
        if func is aten._native_batch_norm_legit_no_training.default or (
            func is aten.native_batch_norm.default and not args[5]
        ):
            return torch.empty_like(first), first.new_empty((0,)), first.new_empty((0,))
        is_inplace = inplace.get(func)
        if is_inplace is None:
            schema = func._schema
            is_inplace = inplace[func] = (
                torch.Tag.pointwise in func.tags
                and bool(schema.arguments)
                and schema.arguments[0].is_write
                and func._overloadpacket.__name__.endswith("_")
            )
        if is_inplace and all(
            not isinstance(a, torch.Tensor) or a.shape == first.shape or a.dim() == 0 for a in args[1:]
        ):
            return first
        return None

    return MacMode


def count_macs(model: Any, inputs: Any, *, formulas: Formulas | None = None, meta: bool = True) -> Count:
    """Count one forward pass of `model` (in eval mode) on `inputs` (a tensor, a tuple of them, or a shape).

    With `meta`, the pass runs on meta copies of the weights; if an op cannot run there, it runs again
    on the model's device. `formulas` defaults to torch's, zoo's and plugins' formulas.
    """
    import torch

    formulas = formulas or all_formulas()
    device = _device_of(model)
    if meta or device.type == "meta":
        saved = _tensor_attributes(model)
        try:
            return _count(model, _inputs(inputs, torch.device("meta")), formulas, torch.device("meta"))
        except (NotImplementedError, RuntimeError, TypeError) as exc:
            if device.type == "meta":
                raise ZooError(
                    f"cannot count on the meta device ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                    "build the model with real weights"
                ) from exc
            for module, key, value in saved:  # a forward may cache meta tensors (a detector's anchors)
                setattr(module, key, value)
    return _count(model, _inputs(inputs, device), formulas, device)


def _tensor_attributes(model: Any) -> list[tuple[Any, str, Any]]:
    """Each submodule's plain tensor attributes (not parameters or buffers), and lists of them, as they are now."""
    import torch

    saved = []
    for module in model.modules():
        for key, value in vars(module).items():
            if key.startswith("_"):
                continue
            if isinstance(value, torch.Tensor) or (
                isinstance(value, list | tuple) and value and all(isinstance(v, torch.Tensor) for v in value)
            ):
                saved.append((module, key, value))
    return saved


def _device_of(model: Any):
    import torch

    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _inputs(inputs: Any, device: Any) -> tuple:
    import torch

    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    elif isinstance(inputs, Sequence) and all(isinstance(d, int) for d in inputs):
        inputs = (torch.empty(tuple(inputs)),)
    result = []
    for tensor in inputs:
        if tensor.device != device:
            tensor = torch.empty_like(tensor, device=device) if device.type == "meta" else tensor.to(device)
        result.append(tensor)
    return tuple(result)


def _count(model: Any, inputs: tuple, formulas: Formulas, device: Any) -> Count:
    import torch
    from torch.func import functional_call

    recorder = _Recorder(model, formulas)
    mode = _mode_class()(recorder, formulas)
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        if device.type == "meta" and _device_of(model).type != "meta":
            tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
            swapped = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
            with torch.no_grad(), mode:
                output = functional_call(model, swapped, inputs)
        else:
            with torch.no_grad(), mode:
                output = model(*inputs)
    finally:
        recorder.remove()
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    total = sum(recorder.by_op.values())
    return Count(
        macs=total,
        fvcore_macs=total + mode.extra,
        by_op=dict(recorder.by_op),
        uncounted=dict(mode.uncounted),
        layers=_layers(model, recorder),
        output_shape=shape_of(output),
        device=device.type,
    )


def _layers(model: Any, recorder: _Recorder) -> tuple[LayerCount, ...]:
    modules = dict(model.named_modules())
    names = recorder.order + [name for name in modules if name not in recorder.calls]
    return tuple(
        LayerCount(
            name=name,
            type=type(modules[name]).__name__,
            depth=0 if not name else name.count(".") + 1,
            output_shape=recorder.shapes.get(name),
            params=sum(p.numel() for p in modules[name].parameters()),
            macs=recorder.macs.get(name, 0),
            calls=recorder.calls.get(name, 0),
        )
        for name in names
    )
