"""The dynamo exporter's torchlib registry, built once per process (zoo.exporting.torchlib_cache)."""

from __future__ import annotations

import onnx
import torch
from torch import nn
from torch.onnx._internal.exporter import _registration

from zoo.exporting import torchlib_cache
from zoo.exporting.exporters import ExportSpec, export_module


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x))).mean((2, 3))


def spec() -> ExportSpec:
    return ExportSpec((torch.randn(2, 3, 16, 16),), [{0: "batch"}], {0: "batch"}, ["input"], ["output"])


def test_a_reused_registry_is_a_copy_of_a_fresh_one(monkeypatch):
    monkeypatch.setattr(torchlib_cache, "_built", {})
    fresh = _registration.ONNXRegistry.from_torchlib()
    with torchlib_cache.reused_registry():
        first = _registration.ONNXRegistry.from_torchlib()
        first.functions.clear()  # what a call registering its own ops could do to its copy
        second = _registration.ONNXRegistry.from_torchlib()
    assert second is not first and second.opset_version == fresh.opset_version
    assert second.functions.keys() == fresh.functions.keys()
    for target, entries in fresh.functions.items():
        assert [e.onnx_function for e in second.functions[target]] == [e.onnx_function for e in entries]
    assert "from_torchlib" in vars(_registration.ONNXRegistry)  # restored as it was
    assert _registration.ONNXRegistry.from_torchlib() is not second


def test_exports_in_one_process_build_the_registry_once_and_export_the_same_graph(monkeypatch):
    monkeypatch.setattr(torchlib_cache, "_built", {})
    original = vars(_registration.ONNXRegistry)["from_torchlib"]
    builds = []

    def counting(cls, *args, **kwargs):
        builds.append(args)
        return original.__func__(cls, *args, **kwargs)

    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", classmethod(counting))
    model = Small().eval()
    graphs = [export_module(model, spec(), "dynamo").proto for _ in range(3)]
    assert len(builds) == 1
    with torch.no_grad():
        plain = torch.onnx.export(model, spec().example, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
    plain.optimize()
    assert len(builds) == 2  # torch's own call builds its own
    ops = [[n.op_type for n in g.graph.node] for g in graphs]
    assert ops[0] == ops[1] == ops[2] == [n.op_type for n in plain.model_proto.graph.node]
    onnx.checker.check_model(graphs[-1])


def test_warm_builds_the_registry_that_the_next_export_uses(monkeypatch):
    """warm() must build under the key an export asks for (torch asks with opset_version=20, not bare)."""
    monkeypatch.setattr(torchlib_cache, "_built", {})
    original = vars(_registration.ONNXRegistry)["from_torchlib"]
    builds = []

    def counting(cls, *args, **kwargs):
        builds.append((args, kwargs))
        return original.__func__(cls, *args, **kwargs)

    monkeypatch.setattr(_registration.ONNXRegistry, "from_torchlib", classmethod(counting))
    torchlib_cache.warm()
    assert len(builds) == 1
    export_module(Small().eval(), spec(), "dynamo")
    assert len(builds) == 1, f"the export built its own registry: {builds[1:]}"
    asked = spec()
    asked.opset = 21
    torchlib_cache.warm(21)
    export_module(Small().eval(), asked, "dynamo")
    assert [kwargs.get("opset_version") for _, kwargs in builds] == [20, 21]


def test_calls_that_bind_to_the_same_arguments_share_one_registry(monkeypatch):
    monkeypatch.setattr(torchlib_cache, "_built", {})
    with torchlib_cache.reused_registry():
        default = _registration.ONNXRegistry.from_torchlib()
        named = _registration.ONNXRegistry.from_torchlib(opset_version=default.opset_version)
        positional = _registration.ONNXRegistry.from_torchlib(default.opset_version)
        other = _registration.ONNXRegistry.from_torchlib(opset_version=default.opset_version + 2)
    assert len(torchlib_cache._built) == 2
    assert named.opset_version == positional.opset_version == default.opset_version
    assert other.opset_version == default.opset_version + 2
