"""Benchmark `zoo convert` against the loop a user would write instead, and its rate over a torchvision sweep.

1. Six torchvision models (the issue's: resnet18 mobilenet_v3_small squeezenet1_0 shufflenet_v2_x0_5
   mnasnet0_5 regnet_x_400mf), random weights, one after another in one run:
   - baseline: one process, for each model `torch.onnx.export(dynamo=True)` with a dynamic batch, then
     `onnxsim.simplify`, then `onnx.save` (no verification);
   - `zoo convert ... --weights none --jobs 2`: two warm workers, export + onnxsim + onnxruntime
     verification at three batch sizes; the target is at most 0.6x the loop's wall time.
   From zoo's manifest: each model's worker time split into the exporter call and everything else (the
   warm worker's per-model overhead, with zoo's own layer outside `zoo.export` shown apart), and whether
   seeded weights replaced a degenerate random init.
2. `--sweep`: `zoo convert --all --family torchvision -o DIR --weights none --jobs 2` (or only the models
   matching `--sweep-pattern`), models per minute and the per-family report.

Prints wall times, ratios and the load average (the machine may be shared). Run from the repository root:
`python -m benchmarks.convert [--sweep] [--sweep-pattern 'resnet*'] [--jobs 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import user_env

MODELS = ("resnet18", "mobilenet_v3_small", "squeezenet1_0", "shufflenet_v2_x0_5", "mnasnet0_5", "regnet_x_400mf")

SEQUENTIAL = r"""
import sys, warnings
import onnx, onnxsim, torch, torchvision
warnings.filterwarnings("ignore")
torch.manual_seed(0)
out = sys.argv[1]
for name in sys.argv[2:]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(2, 3, 224, 224)
    program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                verbose=False)
    simplified, ok = onnxsim.simplify(program.model_proto)
    onnx.save(simplified if ok else program.model_proto, f"{out}/{name}.onnx")
    print(name, flush=True)
"""


def timed(command: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def zoo_convert(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    command = [sys.executable, "-m", "zoo", "convert", *args, "--weights", "none", "--json", "--allow-failures"]
    seconds, done = timed(command, env)
    if done.returncode:
        sys.exit(f"zoo convert failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def overheads(models: list[dict]) -> None:
    """Each model's time in its warm worker: the exporter call, everything else, and the other stages."""
    print(f"\n{'model':<34} {'worker s':>9} {'export s':>9} {'other s':>8} {'other %':>8}  stages and zoo's layer (s)")
    for row in sorted(models, key=lambda m: m["name"]):
        seconds = row.get("seconds") or {}
        work = (row.get("worker") or {}).get("seconds")
        if not work or "export" not in seconds:
            print(f"{row['name']:<34} {row['status']}: {row.get('error_class')}: {row.get('error')}")
            continue
        other = work - seconds["export"]
        stages = " ".join(f"{k}={v:.2f}" for k, v in seconds.items() if k not in ("export", "total"))
        stages += f" worker-outside-export()={work - seconds['total']:.2f}"
        seeded = any("seed" in note for note in row.get("notes") or [])
        twice = "  (seeded weights: degenerate reference)" if seeded else ""
        print(
            f"{row['name']:<34} {work:9.2f} {seconds['export']:9.2f} {other:8.2f} "
            f"{100 * other / seconds['export']:7.0f}%  {stages}{twice}"
        )


def six_models(jobs: int, env: dict[str, str], tmp: Path) -> None:
    print(f"models: {', '.join(MODELS)}; cores: {os.cpu_count()}; load average before: {load()}", flush=True)
    base, done = timed([sys.executable, "-c", SEQUENTIAL, str(tmp), *MODELS], env)
    if done.returncode:
        sys.exit(f"baseline failed:\n{done.stderr[-3000:]}")
    print(f"sequential loop: {base:.1f} s (load {load()})", flush=True)
    names = [f"torchvision:{name}" for name in MODELS]  # plain `resnet18` would also select timm's
    seconds, result = zoo_convert([*names, "-o", str(tmp / "zoo"), "--jobs", str(jobs)], env)
    models = result["models"]
    verified = sum(1 for m in models if m.get("verified"))
    print(f"zoo convert --jobs {jobs}: {seconds:.1f} s, {verified}/{len(models)} verified (load {load()})")
    overheads(models)
    print()
    print(f"{'run':<48} {'wall s':>8} {'x sequential':>13}")
    print(f"{'sequential torch.onnx.export + onnxsim':<48} {base:8.1f} {1:13.2f}")
    print(f"{f'zoo convert --weights none --jobs {jobs} (verified)':<48} {seconds:8.1f} {seconds / base:13.2f}")
    verdict = "met" if seconds <= 0.6 * base else "NOT met"
    print(f"target <= 0.6x sequential: {verdict} ({seconds / base:.2f}x); load after: {load()}")


def sweep(patterns: list[str], jobs: int, env: dict[str, str], tmp: Path) -> None:
    selection = patterns or ["--all"]
    args = [*selection, "--family", "torchvision", "-o", str(tmp / "sweep"), "--jobs", str(jobs)]
    print(f"\nsweep: zoo convert {' '.join(selection)} --family torchvision --weights none --jobs {jobs}", flush=True)
    seconds, result = zoo_convert(args, env)
    models = result["models"]
    print(
        f"{len(models)} models in {seconds:.0f} s: {60 * len(models) / seconds:.1f} models/minute "
        f"(load after: {load()}); {result['counts']}"
    )
    for family, counts in result["families"].items():
        reasons = ", ".join(f"{reason} x{n}" for reason, n in counts["reasons"].items())
        print(
            f"  {family:<16} {counts['models']:>4} models {counts['exported']:>4} exported "
            f"{counts['verified']:>4} verified {counts['failed']:>4} failed  {reasons}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="Also run the torchvision sweep.")
    parser.add_argument("--sweep-pattern", action="append", default=[], help="Sweep only these (repeatable).")
    parser.add_argument("--skip-six", action="store_true", help="Only the sweep.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = user_env() | {"ZOO_HOME": f"{tmp}/home"}
        if not args.skip_six:
            six_models(args.jobs, env, Path(tmp))
        if args.sweep or args.sweep_pattern:
            sweep(args.sweep_pattern, args.jobs, env, Path(tmp))


if __name__ == "__main__":
    main()
