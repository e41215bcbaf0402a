"""zoo export (with verification at batch 1, 2, 3) vs the bare torch.onnx.export + onnxsim.simplify script.

Run: python -m benchmarks.export [--repeat 3] [--models resnet50,mobilenet_v3_small]
Both sides build the same torchvision model with random weights in the same process and write a file;
medians of in-process wall time per model, and the ratio zoo / bare. Also times the TorchScript exporter
(the figure behind the `auto` policy's choice of dynamo first).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path


def make_weights(name: str, path: Path) -> Path:
    """Seeded non-trivial weights with the real key layout (random init makes mobilenet_v3_small's outputs ~1e-9,
    which zoo flags as degenerate and re-verifies on a second export: real weights do not)."""
    import torch
    import torchvision

    from zoo.exporting.verify import seed_weights

    model = getattr(torchvision.models, name)()
    seed_weights(model, 0)
    torch.save(model.state_dict(), path)
    return path


def bare(name: str, path: Path, weights: Path, dynamo: bool = True) -> None:
    """What a user writes by hand: export with a dynamic batch, simplify, save."""
    import contextlib
    import io

    import onnx
    import onnxsim
    import torch
    import torchvision

    model = getattr(torchvision.models, name)().eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                verbose=False,
                input_names=["input"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
            )
            proto = program.model_proto
        else:
            buffer = io.BytesIO()
            torch.onnx.export(
                model,
                (x,),
                buffer,
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
            proto = onnx.load_from_string(buffer.getvalue())
    simplified, _ = onnxsim.simplify(proto)
    onnx.save(simplified, str(path))


def zoo_export(name: str, path: Path, weights: Path, **options):
    from zoo import export

    return export(name, path, weights=str(weights), **options)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default="resnet50,mobilenet_v3_small")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeat}")
    folder = Path(tempfile.mkdtemp(prefix="zoo-bench-export-"))
    warmup = make_weights("mobilenet_v3_small", folder / "w.pth")
    timed(bare, "mobilenet_v3_small", folder / "warmup.onnx", warmup)  # imports and first-call costs out of the way
    header = f"{'model':20} {'bare s':>7} {'zoo s':>7} {'ratio':>6} {'verify s':>8} {'zoo no-verify s':>15} {'ts s':>6}"
    print(header)
    for name in args.models.split(","):
        rows: dict[str, list[float]] = {"bare": [], "zoo": [], "verify": [], "noverify": [], "ts": []}
        report = None
        weights = make_weights(name, folder / f"{name}.pth")
        for _ in range(args.repeat):
            rows["bare"].append(timed(bare, name, folder / f"{name}-bare.onnx", weights)[0])
            seconds, report = timed(zoo_export, name, folder / f"{name}-zoo.onnx", weights)
            rows["zoo"].append(seconds)
            rows["verify"].append(report.seconds.get("verify", 0.0) + report.seconds.get("reference", 0.0))
            rows["noverify"].append(timed(zoo_export, name, folder / f"{name}-nv.onnx", weights, verify=False)[0])
            rows["ts"].append(timed(bare, name, folder / f"{name}-ts.onnx", weights, dynamo=False)[0])
        m = {key: statistics.median(values) for key, values in rows.items()}
        print(
            f"{name:20} {m['bare']:7.2f} {m['zoo']:7.2f} {m['zoo'] / m['bare']:6.2f} {m['verify']:8.2f} "
            f"{m['noverify']:15.2f} {m['ts']:6.2f}"
        )
        assert report is not None
        print(
            f"  zoo: exporter {report.exporter}, nodes {report.nodes_before}->{report.nodes_after}, "
            f"max abs {report.verification.max_abs:.2e}, degenerate reference "
            f"{report.verification.degenerate_reference}"
        )


if __name__ == "__main__":
    main()
