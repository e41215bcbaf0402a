"""The CLI through CliRunner and through a subprocess: output, JSON, errors, and a start-up without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from zoo import __version__
from zoo.cli.app import app

runner = CliRunner()


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.strip() == f"zoo {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "list" in result.output and "info" in result.output
    for command in ("list", "info", "fetch", "adapt", "profile", "export"):
        sub = runner.invoke(app, [command, "--help"])
        assert sub.exit_code == 0 and "Error" not in sub.output, (command, sub.output)


def test_list_table_and_json():
    result = runner.invoke(app, ["list", "resnet*", "--exclude", "*18*", "--family", "torchvision"])
    assert result.exit_code == 0, result.output
    assert "torchvision:resnet50" in result.output and "resnet18" not in result.output
    data = json.loads(runner.invoke(app, ["list", "timm:convnext_*", "--json", "--pretrained"]).output)
    assert [m["name"] for m in data][:2] == ["timm:convnext_atto", "timm:convnext_atto_ols"]
    assert all(m["family"] == "timm" and m["default_weights"] and m["task"] == "classification" for m in data)


def test_info_shows_every_weight_set_and_cache_state(isolated_zoo):
    data = json.loads(runner.invoke(app, ["info", "resnet50", "--json"]).output)
    assert [w["tag"] for w in data["weights"]] == ["tv2_in1k", "tv_in1k"]
    v1 = data["weights"][1]
    assert v1["url"].endswith("resnet50-0676ba61.pth") and v1["expected_hash"] == "0676ba61"
    assert v1["cached"] is False
    cached = isolated_zoo / "weights" / "resnet50-0676ba61.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert json.loads(runner.invoke(app, ["info", "resnet50", "--json"]).output)["weights"][1]["cached"] is True


def test_unknown_name_is_a_one_line_error_with_exit_code():
    result = runner.invoke(app, ["info", "resnet5"])
    assert result.exit_code == 4
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: unknown model 'resnet5'; did you mean resnet50, ") and "zoo list" in line


def zoo_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env={**os.environ, **env}
    )


def test_subprocess_error_has_no_traceback_unless_debug(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[models]]\nname = 'x'\n")
    result = zoo_process("list", ZOO_REGISTRY=str(bad))
    assert result.returncode == 3
    assert result.stderr.strip() == f"Error: {bad}: models[0] (x): missing required field 'family'"
    debug = zoo_process("list", ZOO_REGISTRY=str(bad), ZOO_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "RegistryFileError" in debug.stderr


def modules_after(*commands: list[str], report: str) -> str:
    """Run each `zoo` command in one fresh interpreter, then print `report` (an expression over sys.modules)."""
    code = (
        "import sys\n"
        "from zoo.cli.app import app\n"
        f"for args in {list(commands)!r}:\n"
        "    try:\n"
        "        app(args)\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        f"print({report})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_list_info_and_help_do_not_import_torch():
    heavy = "sorted(m for m in ('torch', 'torchvision', 'timm', 'onnx') if m in sys.modules)"
    assert modules_after(["list"], ["info", "resnet50"], ["plugins"], ["--help"], report=heavy) == "[]"


def test_every_command_module_imports_on_its_own():
    """Importing any command module first (as `zoo.export` users and tests do) must not hit an import cycle."""
    from zoo.cli.app import COMMANDS

    for name in sorted(set(COMMANDS.values())):
        module = f"zoo.cli.{name}"
        result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
        assert result.returncode == 0, f"{module}: {result.stderr.strip().splitlines()[-1:]}"


def test_lazy_command_table_names_every_command_its_modules_define():
    """`zoo` imports only the running command's module, so COMMANDS must list exactly what the modules define."""
    import importlib
    import pkgutil

    import typer.main

    import zoo.cli
    from zoo.cli.app import COMMANDS

    defined = {}
    for module_info in pkgutil.iter_modules(zoo.cli.__path__):
        if module_info.name.endswith("_commands"):
            module = importlib.import_module(f"zoo.cli.{module_info.name}")
            for command in typer.main.get_group(module.commands).commands:
                defined[command] = module_info.name
    assert defined == COMMANDS


def test_running_a_command_imports_only_its_own_module():
    loaded = modules_after(["list", "resnet18"], report="sorted(m for m in sys.modules if m.endswith('_commands'))")
    assert loaded == "['zoo.cli.registry_commands']"


def test_a_process_that_imported_torch_skips_teardown_but_not_atexit_or_output(tmp_path):
    """Such a process ends with os._exit (torch's teardown costs ~1 s): exit code, output and atexit all kept."""
    marker = tmp_path / "atexit-ran"
    (tmp_path / "torch_using_plugin.py").write_text(
        "import atexit, pathlib, sys, torch\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "def _stop():\n"
        "    print('teardown ran', file=sys.stderr, flush=True)\n"
        "class _Witness:\n"
        "    def __del__(self):\n"
        "        _stop()\n"
        "witness = _Witness()\n"  # a module global: collected only by the interpreter's teardown
    )
    env = {"ZOO_PLUGINS": "torch_using_plugin", "PYTHONPATH": str(tmp_path)}
    listed = zoo_process("list", "resnet1*", **env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.rstrip().endswith("models") and "teardown ran" not in listed.stderr
    assert marker.read_text() == "yes"

    marker.unlink()
    failed = zoo_process("info", "resnet5", **env)
    assert failed.returncode == 4 and failed.stderr.startswith("Error: ") and marker.exists()

    normal = zoo_process("list", "resnet1*", ZOO_DEBUG="1", **env)  # ZOO_DEBUG=1: the normal exit, with teardown
    assert normal.returncode == 0 and "teardown ran" in normal.stderr


def test_list_weights_filters_sort_and_json():
    result = runner.invoke(app, ["list", "timm:resnet50.*", "--weights"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:3] == ["weights", "task", "input"] and lines[-1].endswith(" weight sets")
    assert "timm:resnet50.a1_in1k" in result.output and "torchvision:" not in result.output
    data = json.loads(runner.invoke(app, ["list", "--task", "video", "--weights", "--json"]).output)
    assert data and all(w["task"] == "video" and len(w["input_size"]) == 4 and w["url"] for w in data)
    rows = json.loads(runner.invoke(app, ["list", "--min-top1", "84", "--sort", "top1", "--json"]).output)
    top1 = [row["top1"] for row in rows]
    assert top1 and top1 == sorted(top1, reverse=True) and min(top1) >= 84
    small = json.loads(runner.invoke(app, ["list", "--max-params", "2M", "--task", "classification", "--json"]).output)
    assert small and all(row["task"] == "classification" for row in small)
    table_out = runner.invoke(app, ["list", "--max-params", "2M", "--task", "classification"]).output.splitlines()
    assert table_out[-1] == f"{len(small)} models" and len(table_out) == len(small) + 3  # header, rule, footer


def test_list_bad_filters_are_one_line_errors():
    for args, words in (
        (["--sort", "size"], "cannot sort by 'size'"),
        (["--max-params", "lots"], "write e.g. 25M"),
        (["--task", "detect"], "unknown task 'detect'"),
        (["--input-size", "big"], "input size 'big'"),
        (["--family", "nope"], "unknown family 'nope'"),
    ):
        result = runner.invoke(app, ["list", *args])
        assert result.exit_code != 0 and result.output.strip().splitlines() == [result.output.strip()], args
        assert result.output.startswith("Error: ") and words in result.output, (args, result.output)


def test_info_shows_task_params_and_legacy_files():
    result = runner.invoke(app, ["info", "resnet18"])
    assert result.exit_code == 0, result.output
    assert "classification" in result.output and "11.7M" in result.output
    assert "legacy file: https://download.pytorch.org/models/resnet18-5c106cde.pth" in result.output
    data = json.loads(runner.invoke(app, ["info", "fasterrcnn_resnet50_fpn", "--json"]).output)
    assert data["task"] == "detection" and data["weights"][0]["input_size"] == [3, 800, 800]


def test_filtered_listings_do_not_import_torch():
    heavy = "sorted(m for m in ('torch', 'torchvision', 'timm') if m in sys.modules)"
    assert modules_after(["list", "*in22k*", "--weights", "--max-params", "100M"], report=heavy) == "[]"
