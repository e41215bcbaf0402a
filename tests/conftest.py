"""Shared fixtures: every test gets its own ZOO_HOME and a fresh plugin set without entry points."""

from __future__ import annotations

import pytest

from zoo import plugins
from zoo.registry import catalogues


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path_factory, monkeypatch):
    """A private ZOO_HOME and TORCH_HOME; third-party entry points load only when a test asks for them."""
    home = tmp_path_factory.mktemp("zoo-home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    for variable in ("ZOO_PLUGINS", "ZOO_REGISTRY", "ZOO_MIRROR", "ZOO_OFFLINE", "ZOO_STRICT_PLUGINS", "ZOO_DEBUG"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset()
    yield home
    plugins.reset()


@pytest.fixture
def add_plugin():
    """Register a plugin object on the current plugin set for one test: `add_plugin(obj, name)`."""
    added = []

    def add(plugin, name: str = "test-plugin"):
        plugins.get_plugins().add(name, plugin, "test")
        catalogues.reset()
        added.append(name)
        return plugin

    yield add
    for name in added:
        plugins.get_plugins().unregister(name)
    catalogues.reset()
