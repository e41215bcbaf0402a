"""The hooks a zoo plugin can implement. Each hands its contributions to a `register` callback.

zoo calls every hook with keyword arguments, once per plugin, in load order (built-ins, entry points,
ZOO_PLUGINS), so that each record knows the plugin that contributed it. docs/plugins.md documents them.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_models(register: Callable) -> None:
    """Contribute model records: call `register(entry, overrides=None)` once per `zoo.ModelEntry`.

    Called when the registry is first needed. `overrides` names the plugin whose record with the same
    `family:name` this one replaces; without it, a duplicate name is an error naming both plugins.
    `register.entries()` lists the entries registered so far (plugins loaded earlier), for a plugin that
    rewrites them (a company mirror). `zoo.read_registry_file(path, plugin=...)` turns a TOML file into entries.
    """


@hookspec
def register_builders(register: Callable) -> None:
    """Contribute family builders: call `register(family, build, overrides=None)`.

    Called when a model is first built. `build(entry, **kwargs)` returns an `nn.Module` for a
    `zoo.ModelEntry` of that family, with random weights, `kwargs` overriding `entry.builder_kwargs`.
    """


@hookspec
def register_weight_sources(register: Callable) -> None:
    """Contribute weight sources for URL schemes: call `register(scheme, source, overrides=None)`.

    Called when weights are first fetched. `source.open(url, offset=0)` returns a `zoo.OpenedSource`
    (a binary stream, its total size when known, and whether it honoured `offset`); zoo hashes, verifies
    and caches what it reads, exactly as for http(s).
    """


@hookspec
def register_remaps(register: Callable) -> None:
    """Contribute key remaps: call `register(remap, overrides=None)` once per `zoo.Remap`.

    Called when `zoo adapt` plans a load. A model entry's `remap` field names one; `zoo adapt` also uses
    any remap whose `source`/`target` patterns match the pair being adapted.
    """


@hookspec
def register_architectures(register: Callable) -> None:
    """Contribute named architectures for `zoo adapt`: call `register(architecture, overrides=None)`.

    Called when a target name is resolved. `architecture.builder(**kwargs)` returns the `nn.Module`.
    """


@hookspec
def register_flop_formulas(register: Callable) -> None:
    """Contribute MAC formulas for `zoo profile`: call `register(target, formula, overrides=None)`.

    Called each time a model is profiled. `target` is an aten op (`torch.ops.mylib.scale`, or its name
    `"mylib::scale"`) or an `nn.Module` subclass. An op formula is called as `formula(*args, out=output,
    **kwargs)` with the op's tensors (often on the meta device) and returns its multiply-accumulates; a
    module formula is called as `formula(module, inputs, output)` and its count replaces that of every
    op run inside the module.
    """


@hookspec
def register_executors(register: Callable) -> None:
    """Contribute batch executors for `zoo convert --executor NAME`: call `register(name, factory, overrides=None)`.

    Called when `zoo convert` starts a batch. `factory(settings)` gets a `zoo.converting.ExecutorSettings`
    (jobs, threads, address, preload) and returns an executor with `run(tasks, events)`, yielding one
    manifest row (a dict) per `ConvertTask` as each finishes, and `shutdown()`. Import heavy engines
    (Ray, Dask) inside the factory, so an unused executor costs nothing.
    """


@hookspec
def register_runtimes(register: Callable) -> None:
    """Contribute verification runtimes for `zoo export --runtime NAME`: call `register(name, runtime, overrides=None)`.

    Called when an export is verified. `runtime(path, device=..., fp16=...)` loads the exported ONNX file and
    returns a session with `input_names` (the graph's inputs, in order), `label` (runtime, version, device)
    and `run(feeds)`, which takes {input name: numpy array} and returns the outputs in the graph's order;
    zoo compares them with PyTorch's as it does onnxruntime's (built in, always run). An optional
    `runtime.check()` is called before exporting and raises `zoo.UserInputError` when the runtime is not
    installed. Import the runtime inside `runtime`, so an unused one costs nothing.
    """
