"""Start-up time: `zoo --help`, `zoo list`, `zoo info` against `python -c "import timm; timm.list_models(...)"`.

    python -m benchmarks.startup [--runs 10]

Each command runs as a whole process (what a user waits for) over the whole catalogue (every torchvision and
timm model and weight set); medians over --runs, and the ratio. Also the CPU time of each (user + system),
which a loaded machine inflates less than the wall time.
PYTHONDONTWRITEBYTECODE is dropped for the runs: a user's Python caches bytecode, and without the cache
every run would compile zoo's sources again (site-packages is compiled by pip at install time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from benchmarks.timing import median_seconds, user_env

ZOO = str(Path(sys.executable).with_name("zoo")) if Path(sys.executable).with_name("zoo").exists() else "zoo"
COMMANDS = {
    "zoo --help": [ZOO, "--help"],
    "zoo list": [ZOO, "list"],
    "zoo list 'resnet*'": [ZOO, "list", "resnet*"],
    "zoo list '*in22k*' --weights": [ZOO, "list", "*in22k*", "--weights"],
    "zoo info resnet50": [ZOO, "info", "resnet50"],
    "zoo list --weights --json": [ZOO, "list", "--weights", "--json"],
    "timm.list_models('resnet*')": [sys.executable, "-c", "import timm; timm.list_models('resnet*')"],
    "timm.list_models(pretrained=True)": [sys.executable, "-c", "import timm; timm.list_models(pretrained=True)"],
}


def median_process_seconds(command: list[str], runs: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of running `command` as a new process."""
    env = user_env()
    cpu: list[float] = []

    def run() -> None:
        before = os.times()
        subprocess.run(command, capture_output=True, check=True, env=env)
        after = os.times()
        cpu.append(after.children_user - before.children_user + after.children_system - before.children_system)

    run()  # warm the file cache and write the bytecode cache
    cpu.clear()
    return median_seconds(run, runs), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    results = {name: median_process_seconds(command, args.runs) for name, command in COMMANDS.items()}
    baseline = results["timm.list_models('resnet*')"][0]
    print(f"{'command':36} {'median s':>9} {'CPU s':>7} {'vs timm':>8}")
    for name, (seconds, cpu) in results.items():
        print(f"{name:36} {seconds:9.3f} {cpu:7.3f} {seconds / baseline:7.2f}x")


if __name__ == "__main__":
    main()
