"""Where the time of one `zoo export` goes, and zoo against the bare torch.onnx.export + onnxsim script.

Run: python -m benchmarks.export [--repeat 3] [--model resnet18] [--warm 3]

1. Whole process, as a user runs it: `zoo export MODEL --weights FILE -o OUT` (verification at batch 1, 2, 3
   included) against a fresh `python bare.py` doing torch.onnx.export(dynamo=True) with a dynamic batch,
   onnxsim.simplify and onnx.save; the same seeded weights file for both; medians; target: ratio <= 1.1.
2. The stages of one `zoo export` (from its --json report, plus the process's start-up and imports).
3. A warm process (a convert worker: torch imported, the model's first export done): per model, everything
   but the exporter's call (build, references, onnxsim, session, verification, write) against the call;
   target: overhead <= 20% of the export.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks.timing import user_env

BARE = textwrap.dedent(
    """
    import contextlib, io, sys, warnings
    import onnx, onnxsim, torch, torchvision

    name, weights, out = sys.argv[1:4]
    model = torchvision.models.get_model(name, weights=None).eval()
    model.load_state_dict(torch.load(weights, weights_only=True))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (x,), dynamo=True, input_names=["input"], dynamic_shapes=({0: torch.export.Dim("batch", min=1)},)
        )
    simplified, _ = onnxsim.simplify(program.model_proto)
    onnx.save(simplified, out)
    """
)
IMPORTS = "import torch, torchvision, onnx, onnxruntime, onnxscript, onnxsim, zoo.exporting.core"
STAGES = ("imports", "build", "reference", "export", "optimize", "simplify", "session", "verify", "write")


def make_weights(name: str, path: Path) -> Path:
    """Seeded non-trivial weights with the real key layout (what a trained checkpoint looks like to zoo)."""
    import torch
    import torchvision

    from zoo.exporting.verify import seed_weights

    model = torchvision.models.get_model(name, weights=None)
    seed_weights(model, 0)
    torch.save(model.state_dict(), path)
    return path


def wall(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=user_env())
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def whole_process(name: str, weights: Path, folder: Path, repeat: int) -> tuple[list[float], list[float], dict, float]:
    """Wall seconds of the bare script and of `zoo export`, and the --json report of zoo's median run with that
    run's start-up (its wall time less the report's total), so that the stages add up to it."""
    script = folder / "bare.py"
    script.write_text(BARE)
    bare, zoo, reports = [], [], []
    for _ in range(repeat):
        bare.append(wall([sys.executable, str(script), name, str(weights), str(folder / "bare.onnx")])[0])
        seconds, stdout = wall(
            [
                sys.executable,
                "-m",
                "zoo",
                "export",
                name,
                "--weights",
                str(weights),
                "-o",
                str(folder / "zoo.onnx"),
                "--json",
            ]
        )
        zoo.append(seconds)
        reports.append(json.loads(stdout))
    median_run = zoo.index(statistics.median_low(zoo))  # a run that happened, even when `repeat` is even
    report = reports[median_run]
    return bare, zoo, report, zoo[median_run] - report["seconds"]["total"]


def imports_seconds(repeat: int) -> float:
    return statistics.median(wall([sys.executable, "-c", IMPORTS])[0] for _ in range(repeat))


def warm(name: str, weights: Path, folder: Path, repeat: int) -> list[dict[str, float]]:
    """Stage seconds of `repeat` exports in this process after one warm-up export (a warm worker's view: each
    export writes a new file, as each model of a convert run does)."""
    from zoo import export

    export(name, folder / "warm.onnx", weights=str(weights))
    return [export(name, folder / f"warm-{n}.onnx", weights=str(weights)).seconds for n in range(repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--warm", type=int, default=3, help="exports timed in the warm process")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeat}")
    folder = Path(tempfile.mkdtemp(prefix="zoo-bench-export-"))
    weights = make_weights(args.model, folder / f"{args.model}.pth")

    bare, zoo, report, startup = whole_process(args.model, weights, folder, args.repeat)
    b, z = statistics.median(bare), statistics.median(zoo)
    print(f"\n1. whole process, {args.model} (zoo verifies at batch 1, 2, 3; bare does not verify)")
    print(f"{'bare dynamo + onnxsim s':>24} {'zoo export s':>13} {'ratio':>6} {'target':>7}")
    print(f"{b:24.2f} {z:13.2f} {z / b:6.2f} {'<= 1.10':>7} {'met' if z / b <= 1.1 else 'NOT met'}")

    seconds = report["seconds"]
    print(f"\n2. where one `zoo export {args.model}` goes (its --json report; imports in a fresh process)")
    print(f"{'stage':34} {'s':>6} {'share':>6}")
    rows = [("process start-up, CLI, plugins, exit", startup)]
    rows += [(stage + "  (of export)" * (stage == "optimize"), seconds[stage]) for stage in STAGES if stage in seconds]
    rows += [("(imports alone, a fresh process)", imports_seconds(3))]
    for label, value in rows:
        print(f"{label:34} {value:6.2f} {value / z:6.0%}")
    print(f"{'whole process':34} {z:6.2f}")

    runs = warm(args.model, weights, folder, args.warm)
    export_s = statistics.median(r["export"] for r in runs)
    overhead = statistics.median(r["total"] - r["export"] for r in runs)
    print(f"\n3. warm process (a convert worker), {args.model}, median of {args.warm}")
    print(f"{'exporter call s':>16} {'everything else s':>18} {'overhead':>9} {'target':>7}")
    print(f"{export_s:16.2f} {overhead:18.2f} {overhead / export_s:9.0%} {'<= 20%':>7}", end=" ")
    print("met" if overhead / export_s <= 0.2 else "NOT met")
    parts = {s: statistics.median(r.get(s, 0.0) for r in runs) for s in STAGES if s not in ("export", "optimize")}
    print("   " + ", ".join(f"{stage} {value:.2f}" for stage, value in parts.items()))


if __name__ == "__main__":
    main()
