"""Benchmark: `zoo fetch` vs `torch.hub.download_url_to_file` (with hash_prefix) vs `curl -o`, on loopback.

Generates 100 MB and 500 MB files in a temp dir, serves them with tests/http_server.py in a separate
process, and prints the median time and throughput of each, and the ratios the issue sets targets for:
in-process zoo (full sha256) >= 1.4x torch.hub's throughput; `zoo fetch URL --sha256` as a whole
process within 1.1x of `curl -o` (which hashes nothing).

Every tool runs once untimed first, then `--repeat` timed rounds, the order rotating each round; after
each run its file is deleted and `sync` called, so each run starts from the same state of the page cache.
Writing where `--dir` points is part of what is timed: on a VM whose fresh page-cache pages are slow to
fault in, the disk can cost every tool more than the transfer and the hashing together. `--dir /dev/shm`
(a tmpfs) takes the file system out and leaves what the tools themselves do.

    python -m benchmarks.fetch [--sizes 100,500] [--repeat 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.timing import user_env, wall_seconds

ROOT = Path(__file__).resolve().parents[1]
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from http_server import FileServer
server = FileServer().start()
for path in sys.argv[1:]:
    server.add(Path(path).name, Path(path))
print(server.base_url, flush=True)
while True:
    time.sleep(3600)
"""


def make_file(directory: Path, megabytes: int) -> tuple[Path, str]:
    path = directory / f"bench-{megabytes}mb.bin"
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        block = os.urandom(1 << 20)
        for i in range(megabytes):
            chunk = block[:-8] + i.to_bytes(8, "little")
            digest.update(chunk)
            out.write(chunk)
    return path, digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500", help="file sizes in MB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", help="where the tools write (default: a temporary directory)")
    args = parser.parse_args()

    import torch

    import zoo

    work = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    written = Path(tempfile.mkdtemp(prefix="zoo-bench-out-", dir=args.dir))
    os.environ["ZOO_HOME"] = str(written / "home")
    files = [make_file(work, int(size)) for size in args.sizes.split(",")]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(tests=str(ROOT / "tests")), *(str(p) for p, _ in files)],
        stdout=subprocess.PIPE,
        text=True,
    )
    base = server.stdout.readline().strip()
    curl = shutil.which("curl")
    print(f"zoo {zoo.__version__}, torch {torch.__version__}, {os.cpu_count()} CPUs, loopback {base}")
    print(f"tools write under {written}")
    try:
        for path, sha in files:
            bench_file(f"{base}/{path.name}", sha, path.stat().st_size / 1e6, written / "out.bin", args.repeat, curl)
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(written, ignore_errors=True)


def bench_file(url: str, sha: str, size_mb: float, out: Path, repeat: int, curl: str | None) -> None:
    """Time each tool `repeat` times, interleaved, and print medians, throughput and the target ratios."""
    import torch.hub

    from zoo.weights.fetching import fetch_url

    def run_zoo():
        result = fetch_url(url, sha256=sha)
        assert result.sha256 == sha and result.source == url

    def run_hub():
        torch.hub.download_url_to_file(url, str(out), hash_prefix=sha[:8], progress=False)

    env = user_env()

    def run_zoo_cli():
        command = [sys.executable, "-m", "zoo", "fetch", url, "--sha256", sha, "--json"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)

    def run_curl():
        subprocess.run([curl, "-s", "-o", str(out), url], check=True)

    runs = {
        "zoo (in-process, sha256)": run_zoo,
        "torch.hub (hash_prefix)": run_hub,
        "zoo fetch (process, --sha256)": run_zoo_cli,
    }
    if curl:
        runs["curl -o (process, no hash)"] = run_curl

    def clean() -> None:
        out.unlink(missing_ok=True)  # every tool writes a new file, none overwrites its last one
        shutil.rmtree(Path(os.environ["ZOO_HOME"]) / "weights", ignore_errors=True)
        os.sync()

    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(-1, repeat):  # round -1 warms up and is not counted
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotated each round
            seconds = wall_seconds(runs[name])
            clean()
            if round_ >= 0:
                times[name].append(seconds)
    medians = {name: statistics.median(t) for name, t in times.items()}
    print(f"\n{Path(url).name} ({size_mb:.0f} MB), median of {repeat}:")
    for name, median in medians.items():
        print(f"  {name:32s} {median:7.3f} s  {size_mb / 1000 / median:5.2f} GB/s")
    hub = medians["torch.hub (hash_prefix)"] / medians["zoo (in-process, sha256)"]
    print(f"  zoo in-process vs torch.hub: {hub:.2f}x throughput (target >= 1.4x)")
    if curl:
        ratio = medians["zoo fetch (process, --sha256)"] / medians["curl -o (process, no hash)"]
        print(f"  zoo fetch process vs curl -o: {ratio:.2f}x time (target <= 1.1x)")


if __name__ == "__main__":
    main()
