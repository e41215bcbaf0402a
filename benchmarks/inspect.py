"""Benchmark: `zoo inspect FILE` naming a checkpoint's architecture, against what a user does instead.

Checkpoints: real state dicts (CPU, random weights) of a sample of timm and torchvision architectures, some
bare, some wrapped as training scripts save them (`module.`, Lightning's `{"state_dict": {"model.": ...}}`).
- zoo, in-process: load_checkpoint + inspect_checkpoint (read, unwrap, counts, the signature index, the
  sha256 against the registry), median per file; and the identification alone (signature index).
- zoo, whole process: `zoo inspect FILE --no-keys` in a fresh interpreter (bytecode cached, as installed).
- The user's alternative: build candidate models and compare state_dict keys and shapes. Over the whole
  catalogue (~1,500 architectures) that is one build per candidate; the per-candidate cost is measured on
  a seeded sample of candidates (meta device, so no memory) and multiplied out, and also measured for real
  over one family the user might guess (`timm.list_models("<family>*")`).
Run: python -m benchmarks.inspect [--candidates N] [--repeat N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks.timing import median_seconds, user_env

SAMPLE = (
    ("timm", "resnet50", ""),
    ("timm", "efficientnet_b1", "module."),
    ("torchvision", "regnet_y_800mf", ""),
    ("torchvision", "mobilenet_v3_large", "lightning"),
    ("timm", "convnext_tiny", ""),
    ("timm", "vit_small_patch16_224", "module."),
    ("torchvision", "densenet121", ""),
    ("timm", "mobilevitv2_100", ""),
)


def build(family: str, name: str, device: str = "cpu"):
    import torch

    with warnings.catch_warnings(), torch.device(device):
        warnings.simplefilter("ignore")
        if family == "timm":
            import timm

            return timm.create_model(name)
        import torchvision

        return torchvision.models.get_model(name, weights=None)


def write_checkpoints(folder: Path) -> list[tuple[str, Path]]:
    import torch

    files = []
    for family, name, wrap in SAMPLE:
        state = build(family, name).state_dict()
        if wrap == "module.":
            state = {f"module.{k}": v for k, v in state.items()}
        elif wrap == "lightning":
            state = {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3, "hyper_parameters": {}}
        path = folder / f"{name}-{wrap.strip('.') or 'bare'}.pth"
        torch.save(state, path)
        files.append((f"{family}:{name}", path))
    return files


def users_loop(state: dict, candidates: list[str]) -> list[str]:
    """What a user writes: build each candidate (meta device) and compare keys and shapes with the file's."""
    shapes = {k.removeprefix("module."): tuple(v.shape) for k, v in state.items()}
    found = []
    for candidate in candidates:
        family, name = candidate.split(":", 1)
        try:
            model = build(family, name, device="meta")
        except Exception:  # noqa: BLE001 - the user skips what does not build
            continue
        if {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes:
            found.append(candidate)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=40, help="candidates timed for the user's loop")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--process-repeat", type=int, default=3)
    args = parser.parse_args()

    import timm
    import torch
    import torchvision

    from zoo.weights.inspection import find_fitting_models, inspect_checkpoint
    from zoo.weights.loading import load_checkpoint
    from zoo.weights.signatures import load_index

    start = time.perf_counter()
    load_index.cache_clear()
    index = load_index()
    index_seconds = time.perf_counter() - start
    catalogue = [f"torchvision:{n}" for n in torchvision.models.list_models()] + [
        f"timm:{n}" for n in timm.list_models()
    ]
    with tempfile.TemporaryDirectory() as folder:
        files = write_checkpoints(Path(folder))
        rows = []
        for expected, path in files:
            checkpoint = load_checkpoint(path)
            report = inspect_checkpoint(checkpoint)
            named = expected in [f.model for f in report.fits if f.verdict == "fits"]
            whole = median_seconds(lambda p=path: inspect_checkpoint(load_checkpoint(p)), args.repeat)
            alone = median_seconds(lambda c=checkpoint: find_fitting_models(c.state_dict), args.repeat)
            rows.append((path.name, path.stat().st_size / 1e6, whole, alone, named))
        state = torch.load(files[0][1], map_location="cpu")
        candidates = random.Random(0).sample(catalogue, args.candidates)
        start = time.perf_counter()
        users_loop(state, candidates)
        per_candidate = (time.perf_counter() - start) / len(candidates)
        family = [f"timm:{n}" for n in timm.list_models("resnet*")]
        start = time.perf_counter()
        found = users_loop(state, family)
        family_seconds = time.perf_counter() - start

        process = []
        env = user_env()
        with tempfile.TemporaryDirectory() as cache:
            env["PYTHONPYCACHEPREFIX"] = cache
            command = [sys.executable, "-m", "zoo", "inspect", str(files[0][1]), "--no-keys"]
            subprocess.run(command, env=env, capture_output=True, check=True)  # warm the bytecode cache
            for _ in range(args.process_repeat):
                start = time.perf_counter()
                subprocess.run(command, env=env, capture_output=True, check=True)
                process.append(time.perf_counter() - start)

    print(f"signature index: {len(index)} architectures, loaded in {index_seconds * 1e3:.0f} ms")
    print(f"{'checkpoint':34} {'MB':>6} {'inspect s':>10} {'identify ms':>12}  named")
    for name, size, whole, alone, named in rows:
        print(f"{name:34} {size:6.1f} {whole:10.3f} {alone * 1e3:12.1f}  {'yes' if named else 'NO'}")
    median_inspect = statistics.median(r[2] for r in rows)
    full_loop = per_candidate * len(catalogue)
    print(
        f"zoo inspect in-process, median over files: {median_inspect:.3f} s (identification alone "
        f"{statistics.median(r[3] for r in rows) * 1e3:.1f} ms)"
    )
    print(f"zoo inspect whole process ({files[0][1].name}): {statistics.median(process):.2f} s median")
    print(
        f"user's loop: {per_candidate * 1e3:.0f} ms per candidate build ({args.candidates} sampled) x "
        f"{len(catalogue)} architectures = {full_loop:.0f} s per file (estimated)"
    )
    print(
        f"user's loop over one guessed family (timm resnet*, {len(family)} builds): {family_seconds:.1f} s, "
        f"found {', '.join(found) or 'nothing'}"
    )
    print(
        f"ratio: the whole-catalogue loop takes {full_loop / median_inspect:,.0f}x zoo inspect in-process; "
        f"the one-family loop {family_seconds / median_inspect:,.0f}x"
    )


if __name__ == "__main__":
    main()
