"""Benchmark: `zoo adapt ResNetBackbone --from resnet50` against the seed recipe, on the same checkpoint.

The recipe: build torchvision resnet50, torch.load, keep the keys the model has, update, load_state_dict.
In-process (imports done, medians of construction + loading; zoo with and without the proof) and
whole-process (fresh interpreters: the recipe script, `zoo adapt --no-verify`, `zoo adapt` with its default
verification). Whole-process runs are interleaved round by round, so load from other work on a shared
machine falls on every side alike; each figure is a median. They run with bytecode caching on (into a
temporary PYTHONPYCACHEPREFIX), as an installed package runs, even where PYTHONDONTWRITEBYTECODE is set.
The crosswalk (scripts/crosswalk.py, every torchvision/timm pair both ways with the proof on): the
recorded sweep time from docs/crosswalk.json, and `--crosswalk` times a sample of small pairs here.
Run: python -m benchmarks.adapt [--repeat N] [--process-repeat N] [--crosswalk]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks.timing import median_seconds, user_env

RECIPE = textwrap.dedent("""
    import sys, torch, torchvision
    model = torchvision.models.resnet50()
    pretrained = torch.load(sys.argv[1], map_location="cpu")
    model_dict = model.state_dict()
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict})
    model.load_state_dict(model_dict, strict=False)
""")


def trained_like(model):
    """A fresh model whose BatchNorm tensors vary, as in any trained checkpoint (its convolutions already do).

    A fresh init's BatchNorm weights are all ones and its biases and running means zeros: zoo rightly
    flags each of them as "the source never trained it", a check that costs time on such a file only.
    """
    import torch

    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point() and tensor.dim() == 1:  # BatchNorm's (and fc's bias)
                tensor.add_(0.1 * torch.rand_like(tensor))  # positive: running variances stay positive
    return model


def recipe_in_process(path: Path) -> None:
    import torch
    import torchvision

    model = torchvision.models.resnet50()
    pretrained = torch.load(path, map_location="cpu")
    model_dict = model.state_dict()
    model_dict.update({k: v for k, v in pretrained.items() if k in model_dict})
    model.load_state_dict(model_dict, strict=False)


def zoo_in_process(path: Path, verify: bool = False) -> None:
    import zoo

    zoo.adapt("ResNetBackbone", "resnet50", from_weights=path, verify=verify)


ROOT = Path(__file__).resolve().parents[1]
CROSSWALK_SAMPLE = [("resnet18", "resnet18"), ("mnasnet0_5", "mnasnet_050"), ("regnet_y_400mf", "regnety_004")]


def crosswalk_figures(timed: bool) -> None:
    """The recorded sweep's time and counts; with `timed`, a sample of pairs (both ways) timed here."""
    table = json.loads((ROOT / "docs" / "crosswalk.json").read_text())
    seconds = table["seconds"]
    directions = 2 * len(table["pairs"])
    print(
        f"crosswalk     recorded sweep {seconds['total'] / 60:6.1f} min for {len(table['pairs'])} pairs "
        f"({directions} transplants with the proof; {seconds['candidates']:.0f} s finding candidates)"
    )
    if not timed:
        return
    spec = importlib.util.spec_from_file_location("crosswalk", ROOT / "scripts" / "crosswalk.py")
    crosswalk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(crosswalk)
    for tv_name, timm_name in CROSSWALK_SAMPLE:
        start = time.perf_counter()
        row = crosswalk.pair_row(tv_name, timm_name)
        took = time.perf_counter() - start
        verdicts = " / ".join(row[d]["verdict"] for d in ("torchvision->timm", "timm->torchvision"))
        print(f"crosswalk     {tv_name} <-> {timm_name:14s} {took:6.2f} s both ways ({verdicts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--process-repeat", type=int, default=5)
    parser.add_argument("--crosswalk", action="store_true", help="also time a sample of crosswalk pairs")
    args = parser.parse_args()
    import torch
    import torchvision

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.pth"
        torch.save(trained_like(torchvision.models.resnet50()).state_dict(), path)
        recipe_in_process(path)  # warm up all (first-call costs are not what we measure)
        zoo_in_process(path)
        zoo_in_process(path, verify=True)
        recipe = median_seconds(lambda: recipe_in_process(path), args.repeat)
        ours = median_seconds(lambda: zoo_in_process(path), args.repeat)
        checked = median_seconds(lambda: zoo_in_process(path, verify=True), args.repeat)
        print(f"in-process    recipe                   {recipe * 1000:7.1f} ms")
        print(f"in-process    zoo adapt --no-verify    {ours * 1000:7.1f} ms   ratio {ours / recipe:.2f}")
        print(f"in-process    zoo adapt (verify)       {checked * 1000:7.1f} ms   ratio {checked / recipe:.2f}")
        if args.process_repeat == 0:  # in-process figures only
            crosswalk_figures(args.crosswalk)
            return
        script = Path(tmp) / "recipe.py"
        script.write_text(RECIPE)
        zoo_adapt = [
            sys.executable,
            "-m",
            "zoo",
            "adapt",
            "ResNetBackbone",
            "--from",
            "resnet50",
            "--from-weights",
            str(path),
        ]
        commands = {
            "recipe script": [sys.executable, str(script), str(path)],
            "zoo adapt --no-verify": [*zoo_adapt, "--no-verify", "-o", str(Path(tmp) / "o.safetensors")],
            "zoo adapt (verify)": [*zoo_adapt, "-o", str(Path(tmp) / "v.safetensors")],
        }
        env = user_env()
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for command in commands.values():  # warm the page cache and write the .pyc files
            subprocess.run(command, check=True, capture_output=True, cwd=tmp, env=env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for round_ in range(args.process_repeat):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                start = time.perf_counter()
                subprocess.run(commands[name], check=True, capture_output=True, cwd=tmp, env=env)
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["recipe script"])
        for name, values in times.items():
            value = statistics.median(values)
            print(f"whole-process {name:24s} {value:6.2f} s   ratio {value / base:.2f}   (n={len(values)})")
    crosswalk_figures(args.crosswalk)


if __name__ == "__main__":
    main()
