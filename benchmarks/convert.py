"""Benchmark `zoo convert` against the loop a user would write instead.

The models: torchvision's classification models whose default weights are under --max-mb (file_size_mb
in the registry), the --limit smallest. No network here, so the benchmark generates their weights
(seeded, non-trivial: random-init logits are near-constant, which makes zoo verify twice) and
registers them through a ZOO_REGISTRY file with file:// URLs and sha256, as a company mirror would.
Three runs, one after another, on the same weights:

- baseline: one process, for each model `torch.load` + `torch.onnx.export(dynamo=True)` with a dynamic
  batch, then `onnxsim.simplify`, then `onnx.save` (no verification);
- `zoo convert --jobs 2` (each model in its own worker, export + onnxsim + onnxruntime verification);
- `zoo convert --jobs 1`.

Prints wall times, ratios and the load average (the machine may be shared). Run:
`python benchmarks/convert.py [--max-mb 30] [--limit N]`.
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

SEQUENTIAL = r"""
import sys, time, warnings
import onnx, onnxsim, torch, torchvision
warnings.filterwarnings("ignore")
out, weights = sys.argv[1], sys.argv[2]
for name in sys.argv[3:]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    model.load_state_dict(torch.load(f"{weights}/{name}-gen.pth", weights_only=True))
    x = torch.randn(2, 3, 224, 224)
    program = torch.onnx.export(model, (x,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},),
                                verbose=False)
    simplified, ok = onnxsim.simplify(program.model_proto)
    onnx.save(simplified if ok else program.model_proto, f"{out}/{name}.onnx")
    print(name, flush=True)
"""


GENERATE = r"""
import hashlib, sys, torch, torchvision
from zoo.exporting.verify import seed_weights
directory = sys.argv[1]
for name in sys.argv[2:]:
    model = getattr(torchvision.models, name)(weights=None).eval()
    seed_weights(model, 0)
    path = f"{directory}/{name}-gen.pth"
    torch.save(model.state_dict(), path)
    print(name, hashlib.sha256(open(path, "rb").read()).hexdigest())
"""


def small_models(max_mb: float, limit: int | None, exclude: list[str] = ()) -> list[str]:
    import fnmatch

    from zoo.registry import catalogues

    entries = [
        e
        for e in catalogues.models()
        if e.family == "torchvision"
        and e.default_weights is not None
        and (e.default_weights.file_size_mb or 1e9) < max_mb
        and not any(fnmatch.fnmatchcase(e.name, p) for p in exclude)
    ]
    entries.sort(key=lambda e: e.default_weights.file_size_mb)
    return sorted(e.name for e in entries[:limit])


def registry_file(directory: Path, names: list[str]) -> Path:
    """Generated weights for `names` and a registry file naming them `torchvision:gen_<name>`."""
    done = subprocess.run(
        [sys.executable, "-c", GENERATE, str(directory), *names], capture_output=True, text=True, check=True
    )
    hashes = dict(line.split() for line in done.stdout.splitlines())
    blocks = [
        f'[[models]]\nname = "gen_{name}"\nfamily = "torchvision"\nbuilder = "torchvision.models:{name}"\n'
        f'[[models.weights]]\ntag = "gen"\nurl = "{(directory / f"{name}-gen.pth").as_uri()}"\n'
        f'sha256 = "{hashes[name]}"\ninput_size = [3, 224, 224]\n'
        for name in names
    ]
    path = directory / "generated.toml"
    path.write_text("format = 1\n\n" + "\n".join(blocks))
    return path


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, done


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-mb", type=float, default=30.0)
    parser.add_argument("--limit", type=int, default=12, help="The N smallest of those models.")
    parser.add_argument(
        "--exclude",
        action="append",
        default=None,
        help="Leave out these (default mnasnet*: zoo's checkpoint loader drops the state dict's "
        "_metadata, which MNASNet's loader needs, so zoo fails them while the loop does not).",
    )
    args = parser.parse_args()
    names = small_models(args.max_mb, args.limit, ["mnasnet*"] if args.exclude is None else args.exclude)
    print(f"{len(names)} smallest torchvision models with weights under {args.max_mb:g} MB: {', '.join(names)}")
    print(f"cores: {os.cpu_count()}; load average before: {load()}")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        env = os.environ | {"ZOO_HOME": f"{tmp}/home", "ZOO_REGISTRY": str(registry_file(weights, names))}
        seconds, done = timed([sys.executable, "-c", SEQUENTIAL, tmp, str(weights), *names], env)
        if done.returncode:
            sys.exit(f"baseline failed:\n{done.stderr[-3000:]}")
        results["sequential torch.onnx.export + onnxsim"] = seconds
        print(f"sequential loop: {seconds:.1f} s (load {load()})", flush=True)
        for jobs in (2, 1):
            out = Path(tmp) / f"zoo-{jobs}"
            command = [
                sys.executable,
                "-m",
                "zoo",
                "convert",
                *[f"torchvision:gen_{n}" for n in names],
                "-o",
                str(out),
                "--jobs",
                str(jobs),
                "--json",
                "--allow-failures",
            ]
            seconds, done = timed(command, env)
            if done.returncode:
                sys.exit(f"zoo convert --jobs {jobs} failed:\n{done.stderr[-3000:]}")
            models = json.loads(done.stdout)["models"]
            statuses = {m["status"] for m in models}
            verified = sum(1 for m in models if m.get("verified"))
            twice = sum(1 for m in models if m.get("notes"))
            for m in models:
                if m["status"] != "ok":
                    print(f"  {m['name']}: {m['status']} {m.get('error_class')}: {m.get('error')}")
            results[f"zoo convert --jobs {jobs} (verified)"] = seconds
            print(
                f"zoo convert --jobs {jobs}: {seconds:.1f} s, statuses {sorted(statuses)}, "
                f"{verified} verified ({twice} on seeded copies) "
                f"(load {load()})",
                flush=True,
            )
    base = results["sequential torch.onnx.export + onnxsim"]
    print()
    print(f"{'run':<42} {'wall s':>8} {'x sequential':>13}")
    for label, seconds in results.items():
        print(f"{label:<42} {seconds:8.1f} {seconds / base:13.2f}")
    two, one = results["zoo convert --jobs 2 (verified)"], results["zoo convert --jobs 1 (verified)"]
    print(
        f"parallel gain (--jobs 1 / --jobs 2): {one / two:.2f}x; target --jobs 2 <= 0.6x sequential: "
        f"{'met' if two <= 0.6 * base else 'NOT met'} ({two / base:.2f}x); load after: {load()}"
    )


if __name__ == "__main__":
    main()
