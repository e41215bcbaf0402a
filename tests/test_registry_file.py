"""Registry files: the valid format parses, and each malformed case names the file, entry and field."""

from __future__ import annotations

import pytest

from zoo.errors import RegistryFileError
from zoo.registry.registry_file import read_registry_file

VALID = (
    '''
format = 1

[[models]]
name = "tinynet"
family = "mine"
builder = "my_models:TinyNet"
aliases = ["tiny"]
builder_kwargs = { width = 8 }

[[models.weights]]
tag = "v1"
url = "https://example.com/tinynet-0123abcd.pth"
num_classes = 10
input_size = [3, 32, 32]
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]
builder_kwargs = { width = 16 }

[[models.weights]]
tag = "v2"
url = "https://example.com/tinynet_v2.safetensors"
sha256 = "'''
    + "ab" * 32
    + """"
format = "safetensors"
size = 1234
"""
)


def write(tmp_path, text: str):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def test_valid_file_parses(tmp_path):
    (entry,) = read_registry_file(write(tmp_path, VALID), plugin="me")
    assert entry.qualified_name == "mine:tinynet"
    assert entry.plugin == "me" and entry.aliases == ("tiny",)
    assert dict(entry.builder_kwargs) == {"width": 8}
    v1, v2 = entry.weights
    assert v1.file_name == "tinynet-0123abcd.pth" and v1.hash_prefix == "0123abcd" and v1.sha256 is None
    assert v1.input_size == (3, 32, 32) and v1.num_classes == 10
    assert dict(v1.builder_kwargs) == {"width": 16} and dict(v2.builder_kwargs) == {}
    assert v2.sha256 == "ab" * 32 and v2.hash_prefix is None and v2.format == "safetensors" and v2.size == 1234
    assert entry.default_weights is v1


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('name = "tinynet"\n', "", "models[0]: missing required field 'name'"),
        ('builder = "my_models:TinyNet"', "builder = 3", "models[0] (tinynet): field 'builder' must be str"),
        ('aliases = ["tiny"]', 'colour = "red"', "unknown field 'colour'"),
        ('name = "tinynet"', 'name = "tiny.net"', "field 'name' must not contain '.'"),
        ('tag = "v1"', 'tag = "v2"', "tag 'v2' appears twice"),
        ('tag = "v1"\n', "", "weights[0]: missing required field 'tag'"),
        ('sha256 = "' + "ab" * 32, 'sha256 = "xyz', "field 'sha256' must be 64 hex digits"),
        ('format = "safetensors"', 'format = "onnx"', "field 'format' must be one of pth, safetensors"),
        ("input_size = [3, 32, 32]", "input_size = [32, 32]", "field 'input_size' must be [channels, height, width]"),
        ("num_classes = 10", "num_classes = 0", "field 'num_classes' must be positive"),
        ("num_classes = 10", 'num_classes = "ten"', "field 'num_classes' must be int"),
        ("mean = [0.5, 0.5, 0.5]", 'mean = ["a"]', "field 'mean' must be a list of numbers"),
        ("builder_kwargs = { width = 16 }", "builder_kwargs = 16", "weights[0]: field 'builder_kwargs' must be dict"),
        ("format = 1", "format = 2", "field 'format' is 2"),
        ("[[models]]", "[models]", "'models' must be an array of tables"),
    ],
)
def test_malformed_entries_name_file_entry_and_field(tmp_path, old, new, expected):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(RegistryFileError) as info:
        read_registry_file(path, plugin="me")
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_duplicate_names_in_one_file(tmp_path):
    model = VALID.split("[[models.weights]]")[0].split("format = 1")[1]
    path = write(tmp_path, "format = 1\n" + model + model)
    with pytest.raises(RegistryFileError, match=r"models\[1\] \(tinynet\): field 'name': mine:tinynet is already"):
        read_registry_file(path, plugin="me")


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(RegistryFileError, match="not valid TOML"):
        read_registry_file(write(tmp_path, "[[models]\nname="), plugin="me")
    with pytest.raises(RegistryFileError, match="registry file not found"):
        read_registry_file(tmp_path / "nope.toml", plugin="me")
