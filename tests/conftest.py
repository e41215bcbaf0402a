"""Shared fixtures: every test gets its own ZOO_HOME and a fresh plugin set without entry points; `convtest`
for the batch-conversion tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from zoo import plugins
from zoo.registry import catalogues

# Property-based tests: each sets a bounded `@settings(max_examples=..., deadline=...)` for the default run.
# ZOO_HYPOTHESIS_PROFILE=slow multiplies every test's max_examples by SLOW_FACTOR and lifts its deadline.
SLOW_FACTOR = 20
_QUIET = {"database": None, "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("default", settings(**_QUIET))
settings.register_profile("slow", settings(max_examples=100 * SLOW_FACTOR, deadline=None, **_QUIET))
TESTS = Path(__file__).resolve().parent
PROFILE = os.environ.get("ZOO_HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def pytest_collection_modifyitems(items) -> None:
    """Under the slow profile, scale the examples of tests that set their own (their setting beats a profile's)."""
    if PROFILE != "slow":
        return
    for test in {id(t): t for t in (getattr(item, "obj", None) for item in items)}.values():  # once per function
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is not None:
            scaled = settings(own, max_examples=own.max_examples * SLOW_FACTOR, deadline=None)
            test._hypothesis_internal_use_settings = scaled


@pytest.fixture(autouse=True)
def isolated_zoo(tmp_path_factory, monkeypatch):
    """A private ZOO_HOME, TORCH_HOME and HF_HOME; third-party entry points load only when a test asks for them."""
    home = tmp_path_factory.mktemp("zoo-home")
    monkeypatch.setenv("ZOO_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
    monkeypatch.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf-home")))  # zoo shares downloads with it
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
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


@pytest.fixture
def convtest(monkeypatch, tmp_path):
    """The convtest plugin in this process and in workers, with a real checkpoint for tiny_a on file://."""
    import torch

    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ZOO_PLUGINS", "convert_models")
    import convert_models

    torch.manual_seed(0)
    model = convert_models.build(convert_models_entry("tiny_a"))
    weights = tmp_path / "tiny_a-test.pth"
    torch.save(model.state_dict(), weights)
    monkeypatch.setenv("CONVERT_TEST_WEIGHTS_URL", weights.as_uri())
    plugins.reset()
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def convert_models_entry(name):
    from zoo import ModelEntry

    return ModelEntry(name=name, family="convtest", builder=f"convert_models:{name}")
