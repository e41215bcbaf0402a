"""Each test gets a private ZOO_HOME and TORCH_HOME, and zoo loads this plugin through its entry point only."""

from __future__ import annotations

import pytest

from zoo import plugins


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("zoo-home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "efficientnet_lite")  # this entry point, no other third-party one
    for variable in ("ZOO_PLUGINS", "ZOO_REGISTRY", "ZOO_MIRROR", "ZOO_OFFLINE", "ZOO_STRICT_PLUGINS", "ZOO_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    plugins.reset()
    yield home
    plugins.reset()
