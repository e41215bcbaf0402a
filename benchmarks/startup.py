"""Start-up time: `zoo --help`, `zoo list`, `zoo info` against `python -c "import timm; timm.list_models(...)"`.

    python -m benchmarks.startup [--runs 10]

Each command runs as a whole process (what a user waits for); medians over --runs, and the ratio.
PYTHONDONTWRITEBYTECODE is dropped for the runs: a user's Python caches bytecode, and without the cache
every run would compile zoo's sources again (site-packages is compiled by pip at install time).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from benchmarks.timing import median_seconds, user_env

ZOO = str(Path(sys.executable).with_name("zoo")) if Path(sys.executable).with_name("zoo").exists() else "zoo"
COMMANDS = {
    "zoo --help": [ZOO, "--help"],
    "zoo list 'resnet*'": [ZOO, "list", "resnet*"],
    "zoo info resnet50": [ZOO, "info", "resnet50"],
    "timm.list_models('resnet*')": [sys.executable, "-c", "import timm; timm.list_models('resnet*')"],
}


def median_process_seconds(command: list[str], runs: int) -> float:
    env = user_env()

    def run() -> None:
        subprocess.run(command, capture_output=True, check=True, env=env)

    run()  # warm the file cache and write the bytecode cache
    return median_seconds(run, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results = {name: median_process_seconds(command, args.runs) for name, command in COMMANDS.items()}
    baseline = results["timm.list_models('resnet*')"]
    print(f"{'command':34} {'median s':>9} {'vs timm':>8}")
    for name, seconds in results.items():
        print(f"{name:34} {seconds:9.3f} {seconds / baseline:7.2f}x")


if __name__ == "__main__":
    main()
