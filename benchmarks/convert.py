"""Benchmark `zoo convert` against the loop a user would write instead, and its rate over a torchvision sweep.

1. Six torchvision models (the issue's: resnet18 mobilenet_v3_small squeezenet1_0 shufflenet_v2_x0_5
   mnasnet0_5 regnet_x_400mf), random weights, in `--rounds` rounds (3) of three runs right after each
   other, since this VM's speed drifts by half between minutes (the ratio is the median of each round's):
   - baseline: one process, for each model `torch.onnx.export(dynamo=True)` with a dynamic batch, then
     `onnxsim.simplify`, then `onnx.save` (no verification);
   - `zoo convert ... --weights none --jobs 2`: two warm workers, export + onnxsim + onnxruntime
     verification at three batch sizes; the target is at most 0.6x the loop's wall time. Then the same
     into a new folder: zoo now knows each model's time and dispatches the longest first.
   From zoo's manifest: each model's worker time split into the exporter call and everything else (the
   warm worker's per-model overhead, with zoo's own layer outside `zoo.export` shown apart), and whether
   seeded weights replaced a degenerate random init.
2. `--sweep`: `zoo convert --all --family torchvision -o DIR --weights none --jobs 2` (or only the models
   matching `--sweep-pattern`), models per minute and the per-family report.

Prints wall times, ratios, the load average and the CPU time other guests took from this VM (steal).
Run from the repository root: `python -m benchmarks.convert [--rounds 3] [--sweep] [--sweep-pattern 'resnet*']`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def steal() -> int:
    """CPU time the hypervisor gave to other guests so far (/proc/stat, in clock ticks); 0 where unknown."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return 0


def six_models_round(jobs: int, env: dict[str, str], tmp: Path, show: bool) -> tuple[float, float, float]:
    """One round, each run right after the other: the loop, zoo's first run (nothing known), zoo again."""
    ticks = os.sysconf("SC_CLK_TCK")
    before = steal()
    base, done = timed([sys.executable, "-c", SEQUENTIAL, str(tmp), *MODELS], env)
    if done.returncode:
        sys.exit(f"baseline failed:\n{done.stderr[-3000:]}")
    names = [f"torchvision:{name}" for name in MODELS]  # plain `resnet18` would also select timm's
    first, result = zoo_convert([*names, "-o", str(tmp / "zoo"), "--jobs", str(jobs)], env)
    again, repeat = zoo_convert([*names, "-o", str(tmp / "zoo-again"), "--jobs", str(jobs)], env)
    verified = [sum(1 for m in r["models"] if m.get("verified")) for r in (result, repeat)]
    stolen = (steal() - before) / ticks
    print(
        f"loop {base:5.1f} s | zoo {first:5.1f} s ({first / base:.2f}x), again {again:5.1f} s ({again / base:.2f}x) | "
        f"verified {verified[0]}/{len(MODELS)}, {verified[1]}/{len(MODELS)} | CPU stolen by other guests "
        f"{stolen:.1f} s | load {load()}",
        flush=True,
    )
    if show:
        overheads(result["models"])
        order = sorted(repeat["models"], key=lambda m: m["started_at"])
        print(f"again, longest first by the first run's times: {', '.join(m['name'] for m in order)}\n")
    return base, first, again


def six_models(jobs: int, env: dict[str, str], tmp: Path, rounds: int) -> None:
    print(f"models: {', '.join(MODELS)}; cores: {os.cpu_count()}; load average before: {load()}", flush=True)
    results = []
    for index in range(rounds):
        folder = tmp / f"round{index}"
        folder.mkdir()
        round_env = env | {"ZOO_HOME": str(folder / "home")}  # each round's first run knows no durations
        results.append(six_models_round(jobs, round_env, folder, show=index == 0))
    print(f"\n{'run (median of rounds)':<56} {'wall s':>8} {'x sequential':>13}")
    base = statistics.median(r[0] for r in results)
    print(f"{'sequential torch.onnx.export + onnxsim':<56} {base:8.1f} {1:13.2f}")
    for column, label in ((1, "first run"), (2, "again, longest first")):
        wall = statistics.median(r[column] for r in results)
        ratio = statistics.median(r[column] / r[0] for r in results)  # each round's runs share its machine
        verdict = "met" if ratio <= 0.6 else "NOT met"
        print(f"{f'zoo convert --weights none --jobs {jobs}, {label}':<56} {wall:8.1f} {ratio:13.2f}  {verdict}")
    print(f"(ratios: the median of each round's ratio; target <= 0.6x; load after: {load()})")


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
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of loop, zoo, zoo again (medians).")
    parser.add_argument("--sweep", action="store_true", help="Also run the torchvision sweep.")
    parser.add_argument("--sweep-pattern", action="append", default=[], help="Sweep only these (repeatable).")
    parser.add_argument("--skip-six", action="store_true", help="Only the sweep.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = user_env() | {"ZOO_HOME": f"{tmp}/home"}
        if not args.skip_six:
            six_models(args.jobs, env, Path(tmp), args.rounds)
        if args.sweep or args.sweep_pattern:
            sweep(args.sweep_pattern, args.jobs, env, Path(tmp))


if __name__ == "__main__":
    main()
