"""Test plugin for `zoo convert` (loaded with ZOO_PLUGINS=convert_models, in the command and its workers).

Family `convtest`: three tiny convnets that export fine (`tiny_a` with a weights file when
CONVERT_TEST_WEIGHTS_URL names one), `broken` (a custom op no ONNX exporter knows), `hangs` (its forward
never returns), `crashes` (its forward kills its process with SIGSEGV), `grows` (its forward touches up
to 3 GiB, then hangs) and `hog` (builds only when it may reserve 16 GiB of address space).
"""

from __future__ import annotations

import os
import signal
import time

from zoo import ModelEntry, WeightSet, hookimpl

FAMILY = "convtest"
GOOD = ("tiny_a", "tiny_b", "tiny_c")
MODELS = {
    "tiny_a": "tiny convnet",
    "tiny_b": "tiny convnet, wider",
    "tiny_c": "tiny convnet, deeper",
    "broken": "calls a custom op that no ONNX exporter can translate",
    "hangs": "its forward never returns",
    "hog": "reserves 16 GiB of address space when built",
    "crashes": "its forward kills its own process with SIGSEGV",
    "grows": "its forward touches 64 MiB more memory every 20 ms, up to 3 GiB, then hangs",
}


@hookimpl
def register_models(register) -> None:
    for name, description in MODELS.items():
        weights = ()
        url = os.environ.get("CONVERT_TEST_WEIGHTS_URL")
        if name == "tiny_a" and url:
            weights = (WeightSet(tag="test", url=url, num_classes=10, input_size=(3, 32, 32)),)
        register(
            ModelEntry(
                name=name, family=FAMILY, builder=f"convert_models:{name}", weights=weights, description=description
            )
        )


@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs):
    import torch
    from torch import nn

    widths = {"tiny_b": 16, "tiny_c": 8}.get(entry.name, 8)
    depth = 3 if entry.name == "tiny_c" else 1
    layers = [nn.Conv2d(3, widths, 3, padding=1), nn.BatchNorm2d(widths), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(widths, widths, 3, padding=1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths, 10)]
    body = nn.Sequential(*layers)
    if entry.name == "broken":
        op = _opaque_op()
        return nn.Sequential(body, _Lambda(lambda x: op(x)))
    if entry.name == "hangs":
        return nn.Sequential(body, _Lambda(_hang))
    if entry.name == "crashes":
        return nn.Sequential(body, _Lambda(_segfault))
    if entry.name == "grows":
        return nn.Sequential(body, _Lambda(_grow))
    if entry.name == "hog":
        body.reserve = torch.empty(16 << 30, dtype=torch.uint8)  # address space only: pages are never touched
        del body.reserve
    return body


def _hang(x):
    while True:
        time.sleep(0.05)


def _grow(x):
    import torch

    held = []
    for _ in range(48):
        held.append(torch.ones(16 << 20))  # 64 MiB, touched
        time.sleep(0.02)
    _hang(x)


def _segfault(x):
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(60)


def _Lambda(function):
    from torch import nn

    class Lambda(nn.Module):
        def forward(self, x):
            return function(x)

    return Lambda()


_library = None


def _opaque_op():
    """`convtest::opaque`: a custom op with a kernel and a fake, but no ONNX translation."""
    global _library
    import torch

    if _library is None:
        _library = torch.library.Library("convtest", "DEF")
        _library.define("opaque(Tensor x) -> Tensor")
        _library.impl("opaque", lambda x: x * 2, "CompositeExplicitAutograd")
        torch.library.register_fake("convtest::opaque", lambda x: torch.empty_like(x))
    return torch.ops.convtest.opaque
