"""Options and parsing shared by `zoo export` and `zoo convert` (one definition, the same help)."""

from __future__ import annotations

from typing import Annotated

import typer

from zoo.errors import UserInputError

InputOption = Annotated[
    str | None, typer.Option("--input", help="Input shape NxCxHxW (video NxCxTxHxW), e.g. 1x3x224x224.")
]
TaskOption = Annotated[
    str | None,
    typer.Option(help="classification, detection, segmentation, video or optical_flow (default: the registry's)."),
]
RuntimeOption = Annotated[
    list[str] | None,
    typer.Option("--runtime", help="Also verify in this runtime: openvino, opencv, or a plugin's (repeatable)."),
]
DynamicBatchOption = Annotated[
    bool, typer.Option("--dynamic-batch/--static", help="A symbolic batch dimension (default) or a fixed one.")
]
DynamicHWOption = Annotated[bool, typer.Option("--dynamic-hw", help="Symbolic height and width too.")]
OpsetOption = Annotated[int | None, typer.Option(help="ONNX opset (default: the exporter's).")]
ExporterOption = Annotated[str, typer.Option(help="auto (dynamo, then TorchScript on failure), dynamo, torchscript.")]
SimplifyOption = Annotated[bool, typer.Option("--simplify/--no-simplify", help="Run onnxsim.")]
Fp16Option = Annotated[bool, typer.Option("--fp16", help="Half-precision weights, float32 inputs/outputs.")]
VerifyOption = Annotated[
    bool, typer.Option("--verify/--no-verify", help="Compare with PyTorch in onnxruntime at batch 1, 2, 3.")
]
AtolOption = Annotated[
    float | None, typer.Option(help="Absolute tolerance (default 1e-4; optical flow 1e-3 px; fp16, int8 5e-2).")
]
RtolOption = Annotated[float | None, typer.Option(help="Relative tolerance (default 1e-3; fp16 5e-2).")]
ExternalDataOption = Annotated[str, typer.Option(help="Weights in OUT.onnx.data: auto (over 1.8 GB), always, never.")]
ArgOption = Annotated[list[str] | None, typer.Option("--arg", help="Builder argument key=value (repeatable).")]


def parse_shape(text: str) -> tuple[int, ...]:
    """`1x3x224x224` (or `1,3,224,224`) as a tuple of positive ints."""
    try:
        shape = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(d < 1 for d in shape):
        raise UserInputError(f"--input {text!r}: give a shape such as 1x3x224x224")
    return shape
