"""zoo convert's parts: manifest appends and reads, selection, resume planning, executors hook, reports, CLI errors."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zoo import hookimpl, plugins
from zoo.cli.app import app
from zoo.converting import ExportOptions, convert, manifest, planning, report, worker
from zoo.converting.executors import create
from zoo.errors import UnknownModelError, UserInputError
from zoo.registry.catalogues import executors

TESTS = Path(__file__).resolve().parent


def _append_many(directory: str, writer: int) -> None:
    for index in range(40):
        manifest.append(directory, {"name": f"m{writer}-{index}", "status": "ok", "pad": "x" * 2000})


def test_concurrent_appends_from_processes_give_whole_lines(tmp_path):
    processes = [
        multiprocessing.get_context("spawn").Process(target=_append_many, args=(str(tmp_path), w)) for w in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    rows = manifest.read_rows(tmp_path)
    assert len(rows) == 160 and len({r["name"] for r in rows}) == 160
    assert len(manifest.manifest_path(tmp_path).read_text().splitlines()) == 160


def test_a_truncated_last_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    manifest.append(tmp_path, {"name": "a", "status": "failed"})
    with open(manifest.manifest_path(tmp_path), "a") as stream:
        stream.write('{"name": "b", "sta')  # a run killed mid-write
    assert [r["name"] for r in manifest.read_rows(tmp_path)] == ["a"]
    manifest.append(tmp_path, {"name": "a", "status": "ok"})
    assert manifest.read_latest(tmp_path) == {"a": {"name": "a", "status": "ok"}}
    assert len(manifest.read_rows(tmp_path)) == 2


def test_selection_by_patterns_excludes_and_all():
    names = [e.qualified_name for e in planning.select(["resnet*"], ["resnet1*"])]
    assert "torchvision:resnet50" in names and not any(n.endswith(("resnet18", "resnet101")) for n in names)
    assert len(planning.select([], all_models=True)) == len(planning.select(["*"]))
    with pytest.raises(UnknownModelError, match=r"no model matches 'resnt5\*'.*did you mean"):
        planning.select(["resnet18", "resnt5*"])
    with pytest.raises(UserInputError, match="--all"):
        planning.select([])


def test_resume_skips_only_ok_rows_with_the_same_inputs_and_their_output(tmp_path):
    entries = planning.select(["torchvision:resnet18", "torchvision:alexnet", "torchvision:vgg11"])
    options = ExportOptions(weights="none")
    first = planning.plan(entries, tmp_path, options)
    assert [t.name for t in first.tasks] == [e.qualified_name for e in entries]
    by_name = {t.name: t for t in first.tasks}
    done = by_name["torchvision:resnet18"]
    Path(done.output).parent.mkdir(parents=True)
    Path(done.output).write_bytes(b"onnx" * 10)
    manifest.append(tmp_path, {"name": done.name, "status": "ok", "fingerprint": done.fingerprint, "onnx_bytes": 40})
    failed = by_name["torchvision:alexnet"]
    manifest.append(tmp_path, {"name": failed.name, "status": "timeout", "fingerprint": failed.fingerprint})

    again = planning.plan(entries, tmp_path, options)
    assert [r["name"] for r in again.up_to_date] == [done.name]
    assert [t.name for t in again.tasks] == ["torchvision:alexnet", "torchvision:vgg11"]
    assert [t.name for t in planning.plan(entries, tmp_path, options, retry_failed=True).tasks] == [failed.name]
    assert len(planning.plan(entries, tmp_path, options, resume=False).tasks) == 3
    changed = planning.plan(entries, tmp_path, ExportOptions(weights="none", opset=17))
    assert len(changed.tasks) == 3 and changed.tasks[0].fingerprint != done.fingerprint
    Path(done.output).write_bytes(b"truncated")
    assert len(planning.plan(entries, tmp_path, options).tasks) == 3


def test_inputs_name_the_weights_and_options():
    entry = planning.select(["torchvision:resnet18"])[0]
    inputs = planning.task_inputs(entry, ExportOptions())
    weights = entry.default_weights
    assert inputs["weights"] == {"weights": weights.tag, "url": weights.url, "expected_sha256": weights.expected_hash}
    assert inputs["export_options"]["exporter"] == "auto" and inputs["zoo_version"]
    assert planning.task_inputs(entry, ExportOptions(weights="none"))["weights"] == {"weights": "none"}


def test_threads_per_worker_never_oversubscribe():
    assert worker.default_threads(1, cores=2) == 2
    assert worker.default_threads(2, cores=2) == 1
    assert worker.default_threads(8, cores=2) == 1
    assert worker.default_threads(2, cores=16) == 8
    assert worker.default_memory_cap(64) >= 8 * worker.GIB


def test_executors_come_from_the_plugin_hook_and_ray_is_imported_only_when_used():
    assert {"local", "ray"} <= set(executors().names())
    assert executors().owner("local") == "executors"
    with pytest.raises(UserInputError, match="unknown executor 'dask'.*local"):
        create("dask", None)
    code = (
        "import sys; from zoo.registry.catalogues import executors; executors(); "
        "import zoo.cli.app; assert 'ray' not in sys.modules and 'torch' not in sys.modules; "
        "assert 'zoo.converting' not in sys.modules, 'the executors plugin must register lazily'"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


class InlineExecutor:
    """A plugin's executor: converts each task in this very process (no isolation), in order."""

    runs: list[list[str]] = []

    def __init__(self, settings) -> None:
        self.settings = settings

    def run(self, tasks, events):
        from zoo.converting.rows import convert_here

        InlineExecutor.runs.append([t.name for t in tasks])
        for task in tasks:
            events.started(task)
            yield convert_here(task, lambda text, task=task: events.stage(task, text))

    def shutdown(self) -> None:
        pass


class InlinePlugin:
    @hookimpl
    def register_executors(self, register):
        register("inline", InlineExecutor)


def test_a_plugin_executor_runs_the_batch(monkeypatch, tmp_path, add_plugin):
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("ZOO_PLUGINS", "convert_models")
    plugins.reset()
    add_plugin(InlinePlugin(), "inline-executor")
    stages = []

    class Events:
        def started(self, task):
            stages.append((task.name, "started"))

        def stage(self, task, text):
            stages.append((task.name, text))

    options = ExportOptions(weights="none", input_shape=(1, 3, 16, 16), verify=False)
    result = convert(["convtest:tiny_a"], tmp_path, options=options, executor="inline", events=Events())
    assert InlineExecutor.runs[-1] == ["convtest:tiny_a"]
    assert [r["status"] for r in result.rows] == ["ok"] and (tmp_path / "convtest" / "tiny_a.onnx").is_file()
    assert ("convtest:tiny_a", "started") in stages and ("convtest:tiny_a", "exporting to ONNX") in stages
    assert manifest.read_latest(tmp_path)["convtest:tiny_a"]["verified"] is False


def test_reports_escape_what_errors_contain(tmp_path):
    rows = [
        {"name": "a:x", "status": "failed", "error_class": "ExportError", "error": "op <a|b> failed"},
        {
            "name": "a:y",
            "status": "ok",
            "exporter": "dynamo",
            "opset": 18,
            "nodes_before": 9,
            "nodes_after": 5,
            "size_bytes": 2_500_000,
            "max_abs_diff": 1.5e-6,
            "wall_seconds": 3.25,
        },
    ]
    md, html = report.write_reports(tmp_path, rows)
    text = md.read_text()
    assert "| a:x | failed |" in text and "op <a\\|b> failed" in text and "1 failed, 1 ok" in text
    assert "| a:y | ok | dynamo | 18 | 9 -> 5 | 2.5 | 1.5e-06 | 3.2 |" in text
    assert "op &lt;a|b&gt; failed" in html.read_text()


def test_cli_errors_are_one_line_with_exit_codes(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(app, ["convert", "-o", str(tmp_path)])
    assert missing.exit_code == 2 and "--all" in missing.output
    unknown = runner.invoke(app, ["convert", "resnt5*", "-o", str(tmp_path)])
    assert unknown.exit_code == 4 and "no model matches 'resnt5*'" in unknown.output
    bad_jobs = runner.invoke(app, ["convert", "resnet18", "-o", str(tmp_path), "--jobs", "0"])
    assert bad_jobs.exit_code == 2 and "--jobs must be at least 1" in bad_jobs.output
    bad_executor = runner.invoke(app, ["convert", "resnet18", "-o", str(tmp_path), "--executor", "dask", "--json"])
    assert bad_executor.exit_code == 2 and "unknown executor 'dask'" in bad_executor.output
    assert not manifest.read_rows(tmp_path)


def test_convert_result_json_lists_skipped_models(tmp_path):
    from zoo.converting.core import ConvertResult

    result = ConvertResult(
        tmp_path, rows=[{"name": "b", "status": "failed"}], up_to_date=[{"name": "a", "status": "ok"}]
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert [(m["name"], m["status"]) for m in data["models"]] == [("b", "failed"), ("a", "skipped")]
    assert data["counts"] == {"failed": 1, "skipped": 1}
