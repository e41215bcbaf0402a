"""`zoo convert` end to end: real warm workers, real exports, failing, crashing and hanging models, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.converting import ExportOptions, convert, manifest
from zoo.converting.rows import comparable

ZOO = [sys.executable, "-m", "zoo"]
SMALL = ["--input", "1x3x32x32"]


def run_zoo(*args, timeout=300):
    return subprocess.run([*ZOO, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def test_a_batch_with_a_failure_a_crash_and_a_hang_finishes_records_each_and_resumes(convtest, tmp_path):
    out = tmp_path / "onnx"
    first = run_zoo(
        "convert",
        "convtest:*",
        "-x",
        "*hog",
        "-x",
        "*grows",
        "-o",
        str(out),
        *SMALL,
        "--jobs",
        "2",
        "--timeout",
        "40",
        "--json",
    )
    assert first.returncode == 1, first.stderr
    assert "3 of 6 conversions failed" in first.stderr
    result = json.loads(first.stdout)
    rows = manifest.read_latest(out)
    assert sorted(rows) == [f"convtest:{n}" for n in ("broken", "crashes", "hangs", "tiny_a", "tiny_b", "tiny_c")]
    assert {r["name"]: r["status"] for r in result["models"]} == {n: r["status"] for n, r in rows.items()}
    for name in ("tiny_a", "tiny_b", "tiny_c"):
        row = rows[f"convtest:{name}"]
        assert row["status"] == "ok" and row["verified"] and row["max_abs_diff"] < 1e-4, row
        assert row["exporter"] in ("dynamo", "torchscript") and row["opset"] > 0 and row["nodes_after"] > 0
        assert (out / row["output"]).stat().st_size == row["onnx_bytes"] == row["size_bytes"]
    assert rows["convtest:tiny_a"]["weights"] == "test"
    assert rows["convtest:tiny_a"]["weights_sha256"] == convtest  # fetched from file:// and hashed
    assert rows["convtest:tiny_b"]["weights"] == "none"
    broken, hangs, crashes = rows["convtest:broken"], rows["convtest:hangs"], rows["convtest:crashes"]
    assert broken["status"] == "failed" and broken["error_class"] == "ExportError"
    assert "convtest" in broken["error"] and "\n" not in broken["error"]
    assert hangs["status"] == "timeout" and "40 s" in hangs["error"] and 40 <= hangs["wall_seconds"] < 80
    assert crashes["status"] == "crashed" and "SIGSEGV" in crashes["error"], crashes
    # Warm workers: two workers converted the six models, so a worker converted several; a raised error
    # (broken) leaves its worker alive, a crash or a timeout ends only that worker, which is replaced.
    workers = {name: (row["worker"]["pid"], row["worker"]["model"]) for name, row in rows.items()}
    assert max(model for _, model in workers.values()) >= 2, workers
    assert len({pid for pid, _ in workers.values()}) <= 4, workers  # 2 workers + at most 2 replacements
    assert {row["task"] for row in rows.values()} == {"classification"}
    assert not (out / "convtest" / "broken.onnx").exists() and not (out / "convtest" / "hangs.onnx").exists()
    assert not list(out.glob("convtest/.*.tmp"))  # the killed worker's staging folder is gone
    report = (out / "report.md").read_text()
    assert "| convtest:hangs | timeout |" in report and "| convtest:tiny_c | ok |" in report
    assert "| classification | 6 | 3 | 3 | 3 |" in report and "crashed: WorkerCrashed x1" in report
    assert result["families"]["classification"]["verified"] == 3
    assert "<td>convtest:broken</td><td>failed</td>" in (out / "report.html").read_text()

    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "convtest" / "tiny_c.onnx"))
    assert session.run(None, {session.get_inputs()[0].name: np.zeros((3, 3, 32, 32), np.float32)})[0].shape == (3, 10)

    again = run_zoo("convert", "convtest:tiny_*", "-o", str(out), *SMALL, "--json")
    assert again.returncode == 0, again.stderr
    assert {r["status"] for r in json.loads(again.stdout)["models"]} == {"skipped"}
    assert len(manifest.read_rows(out)) == 6  # nothing re-converted, nothing appended

    retried = run_zoo(
        "convert",
        "convtest:*",
        "-x",
        "*hog",
        "-x",
        "*hangs",
        "-x",
        "*grows",
        "-o",
        str(out),
        *SMALL,
        "--retry-failed",
        "--allow-failures",
        "--json",
    )
    assert retried.returncode == 0, retried.stderr
    data = json.loads(retried.stdout)
    assert [r["name"] for r in data["models"]] == ["convtest:broken", "convtest:crashes"]
    assert sorted(data["not_retried"]) == ["convtest:tiny_a", "convtest:tiny_b", "convtest:tiny_c"]
    assert {r["name"] for r in manifest.read_rows(out)[-2:]} == {"convtest:broken", "convtest:crashes"}

    changed = run_zoo("convert", "convtest:tiny_b", "-o", str(out), *SMALL, "--no-simplify", "--json")
    assert changed.returncode == 0, changed.stderr
    row = manifest.read_latest(out)["convtest:tiny_b"]
    assert row["status"] == "ok" and row["inputs"]["export_options"]["simplify"] is False
    assert row["fingerprint"] != rows["convtest:tiny_b"]["fingerprint"]


def _workers_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _start_and_stop(args: list[str], out: Path, rows_before: int, how: signal.Signals) -> int:
    """Start the command, send `how` once it has recorded a row more than `rows_before`; its exit code."""
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    deadline = time.monotonic() + 240
    while len(manifest.read_rows(out)) <= rows_before and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(how)
    return process.wait(60)


def _no_workers_left(marker: str) -> bool:
    deadline = time.monotonic() + 20
    while _workers_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _workers_with(marker) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find orphaned workers")
def test_ctrl_c_or_killing_the_command_mid_batch_loses_nothing_and_a_rerun_finishes(convtest, tmp_path):
    out = tmp_path / "onnx"
    args = [*ZOO, "convert", "convtest:tiny_*", "-o", str(out), *SMALL, "--jobs", "1", "--weights", "none"]
    marker = os.environ["ZOO_HOME"]
    assert _start_and_stop(args, out, 0, signal.SIGINT) == 130  # Ctrl-C: "Error: interrupted"
    assert _no_workers_left(marker), "Ctrl-C left workers running"
    assert len(manifest.read_rows(out)) == 1
    assert _start_and_stop(args, out, 1, signal.SIGKILL) == -signal.SIGKILL  # no chance to clean up
    assert _no_workers_left(marker), "workers outlived the killed command"
    done = manifest.read_latest(out)
    assert len(done) == 2, "the kill should land mid-batch"
    assert len(manifest.read_rows(out)) == 2  # the first run's model was skipped by the second

    rerun = run_zoo("convert", "convtest:tiny_*", "-o", str(out), *SMALL, "--weights", "none", "--json")
    assert rerun.returncode == 0, rerun.stderr
    statuses = {r["name"]: r["status"] for r in json.loads(rerun.stdout)["models"]}
    assert {n for n, s in statuses.items() if s == "skipped"} == set(done)
    assert all(s == "ok" for n, s in statuses.items() if n not in done)
    rows = manifest.read_rows(out)
    assert sorted(r["name"] for r in rows) == ["convtest:tiny_a", "convtest:tiny_b", "convtest:tiny_c"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find orphaned workers")
def test_killing_the_command_mid_model_kills_its_warm_worker_too(convtest, tmp_path):
    out = tmp_path / "onnx"
    args = [*ZOO, "convert", "convtest:hangs", "-o", str(out), *SMALL, "--weights", "none", "--timeout", "600"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    log, deadline = out / "logs" / "convtest" / "hangs.log", time.monotonic() + 240
    while not log.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    assert log.exists(), "the worker never started the model"
    time.sleep(2)  # inside the model's forward, which never returns
    process.kill()
    process.wait(30)
    assert _no_workers_left(os.environ["ZOO_HOME"]), "a warm worker outlived the killed command"


def test_the_memory_cap_turns_a_huge_allocation_into_a_recorded_failure(convtest, tmp_path):
    options = ExportOptions(weights="none", input_shape=(1, 3, 32, 32))
    result = convert(["convtest:hog", "convtest:tiny_b"], tmp_path, options=options, jobs=2, max_memory=6, timeout=120)
    rows = {row["name"]: row for row in result.rows}
    hog = rows["convtest:hog"]
    assert hog["status"] == "memory", hog
    assert "out of memory under the worker's cap of 6.0 GiB" in hog["error"], hog
    assert rows["convtest:tiny_b"]["status"] == "ok"


def test_the_parent_kills_a_worker_whose_resident_memory_passes_the_cap(convtest, tmp_path):
    """The cap without RLIMIT_AS (as for --device cuda, whose driver maps far more than it uses)."""
    from zoo.converting import planning, pool, worker

    entries = planning.select(["convtest:grows"])
    options = ExportOptions(weights="none", input_shape=(1, 3, 16, 16))
    task = planning.plan(entries, tmp_path, options, timeout=90, max_memory=2 * worker.GIB).tasks[0]
    profile = worker.Profile(task.threads, task.max_memory, dict(task.environment), resident_only=True)
    live = pool.Worker(profile)
    try:
        row, reusable = live.convert(task, None)
    finally:
        live.kill()
    assert row["status"] == "memory" and row["error_class"] == "MemoryLimit", row
    assert "past the cap of 2.0 GiB (--max-memory); it was killed" in row["error"] and not reusable
    assert live.process.exitcode == -signal.SIGKILL


def test_workers_convert_several_models_and_are_recycled_by_count_and_by_memory(convtest, tmp_path):
    options = ExportOptions(weights="none", input_shape=(1, 3, 16, 16), verify=False)
    patterns = ["convtest:tiny_*"]
    by_count = convert(patterns, tmp_path / "count", options=options, jobs=1, recycle_after=2, timeout=120)
    pids = [row["worker"]["pid"] for row in by_count.rows]  # one job: rows in task order
    assert [r["status"] for r in by_count.rows] == ["ok"] * 3
    assert pids[0] == pids[1] != pids[2], pids
    assert [row["worker"]["model"] for row in by_count.rows] == [1, 2, 1]
    two = ["convtest:tiny_a", "convtest:tiny_b"]
    by_memory = convert(two, tmp_path / "rss", options=options, jobs=1, recycle_memory=0.01)
    first, second = (row["worker"]["pid"] for row in by_memory.rows)
    assert first != second, "a worker past --recycle-memory should have been replaced"


@pytest.mark.ray
def test_the_ray_executor_gives_the_manifest_the_local_executor_gives(convtest, tmp_path):
    pytest.importorskip("ray")
    options = ExportOptions(input_shape=(1, 3, 32, 32))
    patterns = ["convtest:tiny_*", "convtest:broken", "convtest:crashes"]
    local = convert(patterns, tmp_path / "local", options=options, jobs=2, timeout=120)
    remote = convert(patterns, tmp_path / "ray", options=options, jobs=2, timeout=120, executor="ray")
    assert remote.executor == "ray" and len(remote.rows) == 5
    assert max(row["worker"]["model"] for row in remote.rows) >= 2  # each actor's worker converted several

    def normalised(directory):
        rows = manifest.read_latest(directory)
        return {name: comparable(row) for name, row in rows.items()}

    by_ray, by_local = normalised(tmp_path / "ray"), normalised(tmp_path / "local")
    assert sorted(by_ray) == sorted(by_local)
    differences = {
        (name, key, by_ray[name].get(key), by_local[name].get(key))
        for name in by_ray
        for key in by_ray[name].keys() | by_local[name].keys()
        if by_ray[name].get(key) != by_local[name].get(key)
    }
    assert not differences
    assert {r["status"] for r in local.rows} == {"ok", "failed", "crashed"}


@pytest.mark.slow
def test_the_torchvision_sweep_converts_every_model_and_reports_each_family(tmp_path):
    from zoo.converting import planning

    out = tmp_path / "onnx"
    args = ["--all", "--family", "torchvision", "-o", str(out), "--weights", "none", "--jobs", "2"]
    done = run_zoo("convert", *args, "--allow-failures", "--json", timeout=8 * 3600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout)
    selected = planning.select([], all_models=True, family="torchvision")
    expected = {entry.qualified_name: planning.task_family(entry) for entry in selected}
    rows = manifest.read_latest(out)
    assert {name: row["task"] for name, row in rows.items()} == expected
    for row in rows.values():  # every model exported and verified, or its row says why not
        assert (row["status"] == "ok" and row["verified"]) or (manifest.is_failure(row) and row["error"]), row
    families = data["families"]
    assert set(families) == set(expected.values())
    assert sum(counts["models"] for counts in families.values()) == len(expected)
    classification = families["classification"]
    assert classification["verified"] >= 0.9 * classification["models"], classification
    report = (out / "report.md").read_text()
    for family, counts in families.items():
        numbers = " | ".join(str(counts[key]) for key in ("models", "exported", "verified", "failed"))
        assert f"| {family} | {numbers} |" in report
