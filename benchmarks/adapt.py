"""Benchmark: `zoo adapt ResNetBackbone --from resnet50` against the seed recipe, on the same checkpoint.

The recipe: build torchvision resnet50, torch.load, keep the keys the model has, update, load_state_dict.
In-process (imports done, medians of construction + loading) and whole-process (fresh interpreters).
Run: python benchmarks/adapt.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RECIPE = textwrap.dedent("""
    import sys, torch, torchvision
    model = torchvision.models.resnet50()
    pretrained = torch.load(sys.argv[1], map_location="cpu")
    model_dict = model.state_dict()
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict})
    model.load_state_dict(model_dict, strict=False)
""")


def recipe_in_process(path: Path) -> None:
    import torch
    import torchvision

    model = torchvision.models.resnet50()
    pretrained = torch.load(path, map_location="cpu")
    model_dict = model.state_dict()
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict})
    model.load_state_dict(model_dict, strict=False)


def zoo_in_process(path: Path) -> None:
    import zoo

    zoo.adapt("ResNetBackbone", "resnet50", from_weights=path, verify=False)


def median_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--process-repeat", type=int, default=5)
    args = parser.parse_args()
    import torch
    import torchvision

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.pth"
        torch.save(torchvision.models.resnet50().state_dict(), path)
        recipe_in_process(path)  # warm up both (first-call costs are not what we measure)
        zoo_in_process(path)
        recipe = median_time(lambda: recipe_in_process(path), args.repeat)
        ours = median_time(lambda: zoo_in_process(path), args.repeat)
        print(
            f"in-process   recipe {recipe * 1000:7.1f} ms   zoo adapt {ours * 1000:7.1f} ms   ratio {ours / recipe:.2f}"
        )
        script = Path(tmp) / "recipe.py"
        script.write_text(RECIPE)
        commands = {
            "recipe script": [sys.executable, str(script), str(path)],
            "zoo adapt --no-verify": [
                sys.executable,
                "-m",
                "zoo",
                "adapt",
                "ResNetBackbone",
                "--from",
                "resnet50",
                "--from-weights",
                str(path),
                "--no-verify",
                "-o",
                str(Path(tmp) / "o.safetensors"),
            ],
            "zoo adapt (verify)": [
                sys.executable,
                "-m",
                "zoo",
                "adapt",
                "ResNetBackbone",
                "--from",
                "resnet50",
                "--from-weights",
                str(path),
                "-o",
                str(Path(tmp) / "v.safetensors"),
            ],
        }
        results = {}
        for name, command in commands.items():

            def run(command=command):
                subprocess.run(command, check=True, capture_output=True, cwd=tmp)

            results[name] = median_time(run, args.process_repeat)
        base = results["recipe script"]
        for name, value in results.items():
            print(f"whole-process {name:24s} {value:6.2f} s   ratio {value / base:.2f}")


if __name__ == "__main__":
    main()
