"""Plugin discovery: built-ins, ZOO_PLUGINS, a real pip-installed entry point, and broken-plugin isolation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo import hookimpl, plugins
from zoo.errors import PluginError
from zoo.registry import catalogues

TEST_PLUGIN = Path(__file__).parent / "plugins" / "zoo-test-plugin"


def test_builtins_load_and_report_their_hooks():
    infos = plugins.get_plugins().infos
    assert {"torchvision", "timm"} <= set(infos)
    assert infos["torchvision"].origin == "built-in" and not infos["torchvision"].broken
    assert "register_models" in infos["torchvision"].hooks
    assert catalogues.contributions()["torchvision"]["models"] == len(zoo.list_models(family="torchvision"))


def write_module(directory: Path, name: str, body: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(body))
    sys.modules.pop(name, None)


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_zoo_plugins_variable_loads_modules(module_dir, monkeypatch):
    write_module(
        module_dir,
        "extra_models",
        """
        from zoo import ModelEntry, hookimpl

        @hookimpl
        def register_models(register):
            register(ModelEntry(name="extra", family="extra", builder="torch.nn:Identity"))
    """,
    )
    monkeypatch.setenv("ZOO_PLUGINS", "extra_models")
    plugins.reset()
    assert zoo.get_entry("extra").plugin == "extra_models"
    assert plugins.get_plugins().infos["extra_models"].origin == "ZOO_PLUGINS"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
        ("from zoo import hookimpl\n@hookimpl\ndef register_model(register):\n    pass\n", "register_model"),
    ],
    ids=["import-error", "misspelled-hook"],
)
def test_broken_plugin_is_reported_and_isolated(module_dir, monkeypatch, body, error):
    write_module(module_dir, "broken_plugin", body)
    monkeypatch.setenv("ZOO_PLUGINS", "broken_plugin")
    plugins.reset()
    with pytest.warns(RuntimeWarning, match="broken_plugin"):
        info = plugins.get_plugins().infos["broken_plugin"]
    assert info.broken and error in info.error
    assert "torchvision:resnet18" in zoo.list_models()  # the rest keep working


def test_strict_mode_makes_a_broken_plugin_fatal(module_dir, monkeypatch):
    write_module(module_dir, "broken_plugin", "raise RuntimeError('boom')")
    monkeypatch.setenv("ZOO_PLUGINS", "broken_plugin")
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    plugins.reset()
    with pytest.raises(PluginError, match="plugin 'broken_plugin'.*RuntimeError: boom"):
        plugins.get_plugins()


class FailsInHook:
    @hookimpl
    def register_models(self, register):
        raise ValueError("cannot read my catalogue")


def test_exception_inside_a_hook_marks_only_that_plugin_broken(add_plugin):
    add_plugin(FailsInHook(), "flaky")
    with pytest.warns(RuntimeWarning, match="flaky"):
        names = zoo.list_models()
    assert "torchvision:resnet18" in names
    assert "ValueError: cannot read my catalogue" in plugins.get_plugins().infos["flaky"].error


@pytest.fixture(scope="session")
def installed_test_plugin():
    """pip-install the tiny plugin distribution in tests/plugins into this environment, for the session."""
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-build-isolation", str(TEST_PLUGIN)], check=True)
    yield
    subprocess.run([*pip, "uninstall", "-q", "-y", "zoo-test-plugin"], check=True)


def run_zoo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env)


def test_entry_point_plugin_is_discovered_in_a_subprocess(installed_test_plugin, monkeypatch):
    monkeypatch.delenv("ZOO_LOAD_PLUGINS")
    result = run_zoo("plugins", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (info,) = [p for p in data["plugins"] if p["name"] == "testfam"]
    assert info["origin"] == "entry point" and info["version"] == "0.0.1"
    assert info["contributed"] == {"models": 1, "builders": 1}
    listed = run_zoo("list", "testfam:*", "--json")
    assert [m["name"] for m in json.loads(listed.stdout)] == ["testfam:tinynet"]
    narrowed = run_zoo("list", "testfam:*", "--json", env={"ZOO_LOAD_PLUGINS": "someone_else"})
    assert json.loads(narrowed.stdout) == []
