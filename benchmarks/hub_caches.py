"""Benchmark: a Hugging Face hub file fetched by zoo vs by `huggingface_hub.hf_hub_download`, on a loopback hub.

The hub (tests/http_server.py, in its own process) answers the resolve URL with a 302 to a CDN host and
X-Linked-Etag, as huggingface.co does. Two cases, each in fresh cache folders per run:

- download: `zoo.fetch_url(url)` (streams, checks the hub's sha256, places the file in the Hugging Face
  cache) vs `hf_hub_download` (streams into its cache; huggingface_hub checks no sha256 on a plain HTTP
  download);
- reuse: the file is already in the Hugging Face cache: zoo hashes it once and hard-links it into its own
  cache, vs `hf_hub_download(local_files_only=True)`, which returns the path without reading the file.

    python -m benchmarks.hub_caches [--size 100] [--repeat 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.timing import wall_seconds

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import os, sys, time
sys.path.insert(0, {tests!r})
from http_server import FileServer
server = FileServer().start()
server.add_hub_file("timm/bench", "model.safetensors", os.urandom(int(sys.argv[1]) << 20))
print(server.base_url, flush=True)
while True:
    time.sleep(3600)
"""
REPO, FILE = "timm/bench", "model.safetensors"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="file size in MB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", help="where the tools write (default: a temporary directory)")
    args = parser.parse_args()

    code = SERVER.format(tests=str(ROOT / "tests"))
    server = subprocess.Popen([sys.executable, "-c", code, str(args.size)], stdout=subprocess.PIPE, text=True)
    try:
        base = server.stdout.readline().strip()
        os.environ["HF_ENDPOINT"] = base
        run(base, args)
    finally:
        server.terminate()
        server.wait()


def run(base: str, args) -> None:
    from huggingface_hub import hf_hub_download

    import zoo

    url = f"{base}/{REPO}/resolve/main/{FILE}"
    scratch = Path(tempfile.mkdtemp(prefix="zoo-bench-hub-", dir=args.dir))

    def fresh() -> Path:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        os.environ["ZOO_HOME"] = str(scratch / "zoo")
        os.environ["HF_HOME"] = str(scratch / "hf")
        subprocess.run(["sync"], check=False)
        return scratch / "hf" / "hub"

    def zoo_download() -> None:
        result = zoo.fetch_url(url)
        assert result.verified == "hub" and result.shared, result

    def hf_download() -> None:
        hf_hub_download(REPO, FILE, endpoint=base, cache_dir=scratch / "hf" / "hub")

    def zoo_reuse() -> None:
        assert zoo.fetch_url(url).source == "Hugging Face cache"

    def hf_reuse() -> None:
        hf_hub_download(REPO, FILE, endpoint=base, cache_dir=scratch / "hf" / "hub", local_files_only=True)

    cases = {
        "download": {"zoo fetch": (zoo_download, None), "hf_hub_download": (hf_download, None)},
        "reuse": {"zoo fetch": (zoo_reuse, hf_download), "hf_hub_download": (hf_reuse, hf_download)},
    }
    found: dict[str, float] = {}
    for case, tools in cases.items():
        times: dict[str, list[float]] = {name: [] for name in tools}
        for round_ in range(args.repeat + 1):  # the first round warms up and is not counted
            names = list(tools)
            names = names[round_ % len(names) :] + names[: round_ % len(names)]
            for name in names:
                function, setup = tools[name]
                fresh()
                if setup is not None:
                    setup()
                elapsed = wall_seconds(function)
                if round_:
                    times[name].append(elapsed)
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, seconds in medians.items():
            print(f"{case:9} {name:16} {seconds:7.3f} s  {args.size / seconds:8.0f} MB/s")
        found[case] = medians["zoo fetch"]
        if case == "download":
            print(f"download  zoo / hf_hub_download time: {medians['zoo fetch'] / medians['hf_hub_download']:.2f}x")
    # hf_hub_download trusts a cached file unread; zoo checks its sha256 once, which costs this much of a download:
    print(f"reuse     zoo reuse / zoo download time: {found['reuse'] / found['download']:.2f}x")
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
