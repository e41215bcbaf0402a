"""The files `zoo plugins new NAME` writes (string.Template: `$module`, `$plugin`, ... are filled in by zoo.scaffold).

The plugin they make contributes one of each kind: a model with its builder, a weight source for its own
URL scheme, and a key remap; its test passes straight after `pip install -e '.[test]'`, with no network.
"""

from __future__ import annotations

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A zoo plugin: models, a weight source and a key remap"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["$zoo_requirement", "torch"]

[project.optional-dependencies]
test = ["pytest>=8"]

# zoo finds the plugin through this entry point: `$plugin` is its name in `zoo plugins`
# (ZOO_LOAD_PLUGINS=$plugin loads only it), "$module" the module with the @hookimpl functions.
[project.entry-points.zoo]
$plugin = "$module"

[tool.setuptools]
packages = ["$module"]

[tool.pytest.ini_options]
testpaths = ["tests"]
"""

README = """
# $distribution

A [zoo](https://github.com/) plugin. Install it and check that zoo sees it:

```bash
pip install -e '.[test]'
zoo plugins                 # $plugin: 1 models, 1 builders, 1 weight sources, 1 remaps
pytest                      # the plugin's own tests
```

It contributes:

- the model `$plugin:$model` (`$module/model.py`), built by the family builder in `$module/__init__.py`;
- a weight source for `$scheme:` URLs, which reads files from the directory named by `$env`
  (replace it with your company's storage: an S3 bucket, an artifact server, a package's data files);
- the key remap `$remap`, from the upstream project's names (`stem.conv.*`, `fc.*`) to the model's.

Put a checkpoint at `$$$env/tinynet.pth`, set its sha256 in `$module/__init__.py`, and
`zoo fetch $model` verifies and caches it; `zoo.create_model("$model", pretrained=True)` loads it.
"""

INIT = '''
"""zoo plugin $distribution: a model, a weight source for `$scheme:` URLs, and a key remap.

zoo calls each @hookimpl function once, with a `register` callback, when it first needs that kind of
record. Keep imports here light (no torch): `zoo list` imports this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from zoo import ModelEntry, Remap, WeightSet, hookimpl, import_reference, safe_component

__version__ = "0.1.0"

FAMILY = "$plugin"
SCHEME = "$scheme"
WEIGHTS_DIR_VARIABLE = "$env"
REMAP = "$remap"


# 1. Models: a ModelEntry per model. `builder` is "module:callable"; the family builder below calls it.
@hookimpl
def register_models(register) -> None:
    register(ModelEntry(
        name="$model",
        family=FAMILY,
        builder="$module.model:TinyNet",
        builder_kwargs={"num_classes": 10},
        weights=(
            WeightSet(
                tag="demo",  # the first weight set is the default: `$model` means `$model.demo`
                url=f"{SCHEME}:tinynet.pth",  # served by the weight source below
                # sha256="...",  # set it (`sha256sum FILE`) and zoo verifies every fetch against it;
                # a file name like tinynet-0123abcd.pth does the same with a hash prefix.
                num_classes=10,
                input_size=(3, 32, 32),
                mean=(0.5, 0.5, 0.5),
                std=(0.5, 0.5, 0.5),
            ),
        ),
        remap=REMAP,  # the checkpoint uses upstream names: zoo applies this remap when loading it
        tags=("classification",),
        description="A tiny example network; replace it with your models",
    ))
    # To rewrite models other plugins registered (a company mirror), see `register.entries()` and
    # `overrides=` in zoo's docs/plugins.md.


# The family builder: zoo calls build(entry, **kwargs) to make the model with random weights.
@hookimpl
def register_builders(register) -> None:
    register(FAMILY, build)


def build(entry: ModelEntry, **kwargs: Any):
    builder = import_reference(entry.builder)  # imports torch only now, when a model is built
    return builder(**{**entry.builder_kwargs, **kwargs})


# 2. A weight source: open(url, offset) returns a zoo.OpenedSource; zoo hashes, verifies and caches it.
class DirectorySource:
    """`$scheme:PATH` is the file PATH inside the directory named by $env."""

    def open(self, url: str, offset: int = 0):
        from zoo import FetchError, OpenedSource

        root = os.environ.get(WEIGHTS_DIR_VARIABLE)
        if not root:
            raise FetchError(f"{url}: set {WEIGHTS_DIR_VARIABLE} to the directory that holds the weights")
        path = weights_file(Path(root), url)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - zoo closes it
        except OSError as exc:
            raise FetchError(f"{url}: cannot open {path}: {exc.strerror}") from None
        stream.seek(offset)  # honour offset so an interrupted fetch resumes
        return OpenedSource(stream, size=path.stat().st_size, resumed=True)


def weights_file(root: Path, url: str) -> Path:
    """The file `url` names inside `root`. A URL is input from outside: zoo.safe_component checks each
    (percent-decoded) component, so `$scheme:../secret` or `$scheme:..%2fsecret` is refused, never opened."""
    parts = unquote(urlsplit(url).path).split("/")
    return root.joinpath(*(safe_component(part, f"{url}: path component") for part in parts))


@hookimpl
def register_weight_sources(register) -> None:
    register(SCHEME, DirectorySource())


# 3. A key remap: regex rules (or a function(state_dict, model) -> dict) from upstream names to the model's.
@hookimpl
def register_remaps(register) -> None:
    register(Remap(
        name=REMAP,
        rules=(
            (r"^stem\\.conv\\.", "features.0."),
            (r"^stem\\.bn\\.", "features.1."),
            (r"^fc\\.", "classifier."),
        ),
        source="$plugin*",  # `zoo adapt` also applies it to sources and targets matching these patterns
        target="$plugin*",
        description="upstream checkpoint names (stem.conv, stem.bn, fc) to TinyNet's",
    ))
'''

MODEL = '''
"""The example network. Builders may import torch; the plugin's __init__ must not."""

from __future__ import annotations

from torch import nn


class TinyNet(nn.Module):
    """conv-bn-relu, global pooling and a linear classifier."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
'''

TEST = '''
"""Tests for $distribution: `pip install -e '.[test]'`, then `pytest`."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import torch

import $module
import zoo
from zoo import plugins
from zoo.registry import catalogues
from zoo import FetchError
from $module.model import TinyNet

UPSTREAM = {"features.0.": "stem.conv.", "features.1.": "stem.bn.", "classifier.": "fc."}


@pytest.fixture(autouse=True)
def weights_dir(tmp_path, monkeypatch):
    """zoo with a private cache and only this plugin, registered in-process (entry points off)."""
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "zoo-home"))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "")
    monkeypatch.setenv("$env", str(tmp_path / "weights"))
    (tmp_path / "weights").mkdir()
    plugins.reset()
    plugins.get_plugins().add("$plugin", $module, "test")
    catalogues.reset()
    yield tmp_path / "weights"
    plugins.reset()


def upstream_checkpoint(path) -> dict:
    """Save a checkpoint in the upstream project's names; return the state dict in TinyNet's names."""
    torch.manual_seed(0)
    state = TinyNet().state_dict()
    upstream = {}
    for key, value in state.items():
        prefix = next(p for p in UPSTREAM if key.startswith(p))
        upstream[UPSTREAM[prefix] + key[len(prefix):]] = value
    torch.save(upstream, path)
    return state


def test_the_plugin_contributes_one_of_each_kind():
    assert catalogues.contributions()["$plugin"] == {
        "models": 1, "builders": 1, "weight sources": 1, "remaps": 1,
    }
    assert zoo.get_entry("$model").qualified_name == "$plugin:$model"


def test_pretrained_model_comes_through_the_source_and_the_remap(weights_dir):
    expected = upstream_checkpoint(weights_dir / "tinynet.pth")
    model = zoo.create_model("$model", pretrained=True)
    for key, value in expected.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_the_source_is_verified_and_cached(weights_dir):
    path = weights_dir / "tinynet.pth"
    upstream_checkpoint(path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    fetched = zoo.fetch_url("$scheme:tinynet.pth", sha256=sha256)
    assert fetched.sha256 == sha256 and fetched.path.read_bytes() == path.read_bytes()
    with pytest.raises(FetchError, match="failed verification"):
        zoo.fetch_url("$scheme:tinynet.pth", sha256="0" * 64, force=True)


def test_a_url_that_climbs_out_of_the_weights_directory_is_refused(weights_dir):
    secret = weights_dir.parent / "secret.pth"
    secret.write_bytes(b"not for the plugin to read")
    sha256 = hashlib.sha256(secret.read_bytes()).hexdigest()
    for path in ("../secret.pth", "..%2fsecret.pth", "%2e%2e/secret.pth", "sub/../../secret.pth", "/etc/passwd"):
        with pytest.raises(zoo.ZooError, match="path component"):
            $module.DirectorySource().open(f"$scheme:{path}")
        with pytest.raises(zoo.ZooError):
            zoo.fetch_url(f"$scheme:{path}", sha256=sha256)
    assert [p.name for p in weights_dir.parent.rglob("secret.pth")] == ["secret.pth"]  # nothing copied to the cache


def test_installed_plugin_is_found_through_its_entry_point():
    env = {**os.environ, "ZOO_LOAD_PLUGINS": "$plugin"}
    result = subprocess.run([sys.executable, "-m", "zoo", "plugins", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    (info,) = [p for p in json.loads(result.stdout)["plugins"] if p["name"] == "$plugin"]
    assert info["origin"] == "entry point" and not info["error"], info
'''

TEMPLATES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "$module/__init__.py": INIT,
    "$module/model.py": MODEL,
    "tests/test_$module.py": TEST,
}
