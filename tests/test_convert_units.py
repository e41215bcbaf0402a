"""zoo convert's parts: manifest appends and reads, selection, resume planning, executors hook, reports, CLI errors."""

from __future__ import annotations

import dataclasses
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


def test_the_report_counts_each_task_family_with_failure_reasons(tmp_path):
    rows = [
        {"name": "tv:a", "task": "classification", "status": "ok", "exporter": "dynamo", "verified": True},
        {"name": "tv:b", "task": "classification", "status": "skipped", "exporter": "dynamo", "verified": True},
        {"name": "tv:c", "task": "classification", "status": "ok", "exporter": "dynamo", "verified": False},
        {"name": "tv:d", "task": "detection", "status": "verify-failed", "exporter": "dynamo", "verified": False},
        {"name": "tv:e", "task": "detection", "status": "failed", "error_class": "ExportError", "error": "op"},
        {"name": "tv:f", "task": "detection", "status": "failed", "error_class": "ExportError", "error": "op"},
        {"name": "tv:g", "task": "quantized", "status": "crashed", "error_class": "WorkerCrashed", "error": "SIGSEGV"},
        {"name": "tv:h", "task": "segmentation", "status": "memory", "error_class": "MemoryLimit", "error": "cap"},
        {"name": "old:x", "status": "timeout", "error_class": "TimeoutError", "error": "900 s"},
    ]
    families = report.family_counts(rows)
    assert list(families) == ["classification", "detection", "segmentation", "quantized", "unknown"]
    assert families["classification"] == {"models": 3, "exported": 3, "verified": 2, "failed": 0, "reasons": {}}
    detection = families["detection"]
    assert (detection["models"], detection["exported"], detection["verified"], detection["failed"]) == (3, 1, 0, 3)
    assert detection["reasons"] == {"verify-failed: ?": 1, "failed: ExportError": 2}
    assert families["quantized"]["reasons"] == {"crashed: WorkerCrashed": 1}
    md, html = report.write_reports(tmp_path, rows)
    text = md.read_text()
    assert "| detection | 3 | 1 | 0 | 3 | failed: ExportError x2, verify-failed: ? x1 |" in text
    assert "| segmentation | 1 | 0 | 0 | 1 | memory: MemoryLimit x1 |" in text
    assert text.index("| task family |") < text.index("| model | status |")
    assert "<td>quantized</td><td>1</td><td>0</td><td>0</td><td>1</td>" in html.read_text()


def test_report_and_converting_never_import_the_cli():
    code = (
        "import sys, zoo.converting, zoo.converting.report as r; r.summary_table([]); r.family_table([]); "
        "assert not [m for m in sys.modules if m.startswith('zoo.cli')], sorted(sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_each_task_carries_its_task_family_and_a_family_narrows_selection(tmp_path):
    from zoo import ModelEntry

    assert planning.task_family(ModelEntry(name="q", family="f", builder="m:q", tags=("quantized",))) == "quantized"
    assert planning.task_family(ModelEntry(name="d", family="f", builder="m:d", task="detection")) == "detection"
    entries = planning.select([], all_models=True, family="torchvision")
    assert entries and {e.family for e in entries} == {"torchvision"}
    assert len(entries) < len(planning.select([], all_models=True))
    tasks = planning.plan(entries[:3], tmp_path, ExportOptions(weights="none")).tasks
    assert [t.family_task for t in tasks] == [planning.task_family(e) for e in entries[:3]]
    with pytest.raises(UnknownModelError, match="no model of family 'nope'.*torchvision"):
        planning.select([], all_models=True, family="nope")
    with pytest.raises(UnknownModelError, match="in family 'timm'"):
        planning.select(["alexnet"], family="timm")


def test_out_of_memory_is_recognised_through_the_exception_chain():
    from zoo.converting.rows import is_out_of_memory

    try:
        try:
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 17179869184 bytes")
        except RuntimeError as inner:
            raise ValueError("building the model failed") from inner
    except ValueError as outer:
        assert is_out_of_memory(outer)
    assert is_out_of_memory(MemoryError())
    ort = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Exception during initialization: std::bad_alloc"
    assert is_out_of_memory(RuntimeError(ort))  # onnxruntime's session for vit_h_14 under a 10.6 GiB cap
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_protobuf_failing_to_serialize_is_out_of_memory_only_under_an_address_space_cap():
    from google.protobuf.message import EncodeError

    from zoo.converting.rows import is_out_of_memory

    refused = EncodeError("Failed to serialize proto")
    assert is_out_of_memory(refused, capped=True)
    assert not is_out_of_memory(refused)  # without a cap it is not memory: the row keeps protobuf's message
    assert not is_out_of_memory(EncodeError("Message is missing required fields"), capped=True)


def test_a_native_crash_under_the_memory_cap_says_the_cap_may_be_why():
    import signal

    from zoo.converting.planning import ConvertTask
    from zoo.converting.pool import _crash_message

    capped = ConvertTask("torchvision:big", "big.onnx", ExportOptions(), {}, "f", max_memory=int(10.6 * 2**30))
    segfault = _crash_message(-signal.SIGSEGV, capped)
    assert segfault.startswith("the worker process died of SIGSEGV while converting torchvision:big")
    assert "address-space cap of 10.6 GiB" in segfault and "--max-memory" in segfault
    assert "cap" not in _crash_message(-signal.SIGSEGV, dataclasses.replace(capped, max_memory=None))
    assert "address-space" not in _crash_message(-signal.SIGKILL, capped)  # the OOM killer's hint instead
    assert "address-space" not in _crash_message(3, capped)


def test_cli_recycling_options_are_checked_and_their_help_names_the_defaults(tmp_path):
    from zoo.converting.pool import RECYCLE_AFTER, RECYCLE_RSS

    runner = CliRunner()
    help_text = " ".join(runner.invoke(app, ["convert", "--help"], terminal_width=200).output.split())
    assert f"(default: {RECYCLE_AFTER})" in help_text and f"(default: {RECYCLE_RSS >> 30};" in help_text
    assert "--family" in help_text
    bad = runner.invoke(app, ["convert", "resnet18", "-o", str(tmp_path), "--recycle-after", "0"])
    assert bad.exit_code == 2 and "--recycle-after must be at least 1" in bad.output


def test_each_extra_runtime_gets_a_column_and_an_unknown_one_fails_the_command_once(tmp_path):
    rows = [
        {
            "name": "a:x",
            "status": "ok",
            "runtimes": {
                "onnxruntime": {"passed": True, "max_abs": 1e-6},
                "openvino": {"passed": True, "max_abs": 2.5e-6},
                "opencv": {"passed": False, "max_abs": 0.31},
            },
        },
        {"name": "a:y", "status": "verify-failed", "runtimes": {"opencv": {"passed": False, "error": "no layer X"}}},
        {"name": "a:z", "status": "failed", "error_class": "ExportError", "error": "op"},
    ]
    assert report.columns(rows)[-3:] == ("opencv", "openvino", "error")
    text = report.markdown(rows, "t")
    assert "| a:x | ok |" in text and "| FAILED 0.31 | ok 2.5e-06 |" in text
    assert "| error: no layer X |  |" in text
    assert report.columns([rows[2]]) == report.COLUMNS
    runner = CliRunner()
    bad = runner.invoke(app, ["convert", "resnet18", "-o", str(tmp_path), "--runtime", "nope"])
    assert bad.exit_code == 2 and "--runtime 'nope': no such runtime" in bad.output
    assert not manifest.read_rows(tmp_path)
