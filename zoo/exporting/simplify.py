"""Simplify an ONNX model with onnxsim, counting nodes before and after; never fatal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

PROTOBUF_LIMIT = 2**31 - 1  # bytes one protobuf message may serialize to
SURELY_UNDER = 2**30  # tensor bytes under which a model is taken to fit in one message without sizing it


@dataclass
class Simplified:
    """The simplified model (None when onnxsim failed or was not applied) and what happened."""

    proto: onnx.ModelProto | None
    nodes_before: int
    nodes_after: int
    note: str | None
    seconds: float


def count_nodes(proto: onnx.ModelProto) -> int:
    """Nodes in the main graph and every subgraph (If/Loop bodies)."""
    return sum(len(graph.node) for graph in _graphs(proto))


def over_protobuf_limit(proto: onnx.ModelProto) -> bool:
    """True when `proto` cannot be serialized as one message (2 GB): upb refuses even to size it then.

    upb sizes a message by encoding it (0.09 s for resnet18's 47 MB), so a model whose tensors come to under
    `SURELY_UNDER` is answered from their byte counts alone: the graph around them is never a gigabyte.
    """
    from google.protobuf.message import EncodeError

    if tensor_bytes(proto) < SURELY_UNDER:
        return False
    try:
        return proto.ByteSize() > PROTOBUF_LIMIT
    except EncodeError:
        return True


def _graphs(proto: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph and every subgraph (If/Loop bodies), each once."""
    stack = [proto.graph]
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    stack.append(attr.g)
                stack.extend(attr.graphs)


def tensor_bytes(proto: onnx.ModelProto) -> int:
    """Bytes of every initializer and tensor attribute (Constant nodes), in all graphs."""
    total = 0
    for graph in _graphs(proto):
        tensors = list(graph.initializer)
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    tensors.append(attr.t)
                tensors.extend(attr.tensors)
        total += sum(len(t.raw_data) or t.ByteSize() for t in tensors)
    return total


def simplify(proto: onnx.ModelProto, check: bool = False) -> Simplified:
    """onnxsim.simplify `proto`; `check` asks onnxsim to compare outputs itself (used without --verify)."""
    start = time.perf_counter()
    before = count_nodes(proto)
    try:
        import onnxsim
    except ImportError:
        return Simplified(None, before, before, "onnxsim is not installed (pip install onnxsim)", 0.0)
    if over_protobuf_limit(proto):
        return Simplified(None, before, before, "onnxsim cannot take a model over 2 GB", 0.0)
    try:
        with _quiet_stdout():
            result, ok = onnxsim.simplify(proto, check_n=1 if check else 0)
    except Exception as exc:  # noqa: BLE001 - any failure: keep the unsimplified model and say why
        note = f"onnxsim failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc) else ''})"
        return Simplified(None, before, before, note, time.perf_counter() - start)
    if not ok:
        return Simplified(None, before, before, "onnxsim's own check failed", time.perf_counter() - start)
    return Simplified(result, before, count_nodes(result), None, time.perf_counter() - start)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """onnxsim's C++ core prints a line per op it cannot fold ("WARNING: failed to run ...") on file
    descriptors 1 and 2 (0.8.1 on stderr): send both to /dev/null for the call, so the CLI's output stays the
    report; its failures still come back as exceptions."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
