"""The cache and its commands: list, verify (quarantine), rm, prune, import, mirror sync; fetch via the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from http_server import http_server  # noqa: F401 - the fixture
from typer.testing import CliRunner
from weights_fixtures import checkpoint_bytes, hashed_name, registry_entry, sha256_hex, tiny_state_dict, write_registry

from zoo.cli.app import app
from zoo.registry import catalogues
from zoo.registry.records import WeightSet
from zoo.weights import cache

runner = CliRunner()


@pytest.fixture
def two_models(http_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_BACKOFF", "0.01")
    files = {}
    entries = []
    for seed, model in enumerate(("tiny_a", "tiny_b")):
        data = checkpoint_bytes(tiny_state_dict(seed))
        name = hashed_name(model, data)
        entries.append(registry_entry(model, http_server.add(name, data), data, family="testzoo"))
        files[model] = (name, data)
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", entries)))
    catalogues.reset()
    return files


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result


def test_cache_key_keeps_generic_file_names_apart():
    a = WeightSet("a", "https://huggingface.co/timm/a/resolve/main/model.safetensors")
    b = WeightSet("b", "https://huggingface.co/timm/b/resolve/main/model.safetensors")
    assert cache.cached_path(a) != cache.cached_path(b) and cache.cached_path(a).name == "model.safetensors"
    tv = WeightSet("t", "https://download.pytorch.org/models/resnet18-f37072fd.pth")
    assert cache.cached_path(tv) == cache.weights_dir() / "resnet18-f37072fd.pth"


def test_fetch_pattern_json_then_cache_list(two_models, http_server):  # noqa: F811
    result = _run("fetch", "testzoo:tiny_*", "--json")
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert [(i["name"], i["tag"]) for i in items] == [("testzoo:tiny_a", "v1"), ("testzoo:tiny_b", "v1")]
    assert {i["sha256"] for i in items} == {sha256_hex(d) for _, d in two_models.values()}
    listed = json.loads(_run("cache", "list", "--json").stdout)
    assert sorted(r["key"] for r in listed) == sorted(n for n, _ in two_models.values())
    assert {r["name"] for r in listed} == {"testzoo:tiny_a", "testzoo:tiny_b"}


def test_verify_quarantines_a_corrupted_file_then_prune_and_rm(two_models):
    assert _run("fetch", "testzoo:tiny_a", "testzoo:tiny_b").exit_code == 0
    name_a, data_a = two_models["tiny_a"]
    path_a = cache.weights_dir() / name_a
    path_a.write_bytes(data_a[:-1] + bytes([data_a[-1] ^ 1]))  # one flipped bit, same size
    result = _run("cache", "verify", "--json")
    assert result.exit_code == 1
    statuses = {r["key"]: r["status"] for r in json.loads(result.stdout)}
    assert statuses == {name_a: "bad", two_models["tiny_b"][0]: "ok"}
    assert not path_a.exists() and path_a.with_name(name_a + ".bad").exists()
    assert _run("cache", "verify").exit_code == 0
    pruned = _run("cache", "prune")
    assert pruned.exit_code == 0 and not path_a.with_name(name_a + ".bad").exists()
    assert _run("cache", "rm", "testzoo:tiny_b").exit_code == 0
    assert cache.cached_files() == []


def test_a_damaged_cached_file_is_caught_on_the_next_fetch(two_models):
    name, data = two_models["tiny_a"]
    (cache.weights_dir()).mkdir(parents=True)
    (cache.weights_dir() / name).write_bytes(b"garbage")  # no record: zoo checks it once
    result = _run("fetch", "testzoo:tiny_a")
    assert result.exit_code == 5 and "expected sha256" in result.output


def test_import_checks_the_hash_and_reports_the_model(two_models, tmp_path):
    name, data = two_models["tiny_b"]
    usb = tmp_path / "usb" / "renamed.pth"
    usb.parent.mkdir()
    usb.write_bytes(data)
    result = _run("import", str(usb), "--json")
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert (item["name"], item["tag"], item["sha256"]) == ("testzoo:tiny_b", "v1", sha256_hex(data))
    assert (cache.weights_dir() / name).read_bytes() == data
    stranger = tmp_path / "other.pth"
    stranger.write_bytes(checkpoint_bytes(tiny_state_dict(9)))
    refused = _run("import", str(stranger))
    assert refused.exit_code == 5 and "does not match" in refused.output


def test_mirror_sync_builds_a_directory_that_serves_as_an_offline_mirror(two_models, tmp_path, monkeypatch):
    target = tmp_path / "mirror"
    result = _run("mirror", "sync", "testzoo:tiny_*", "--to", str(target))
    assert result.exit_code == 0, result.output
    index = json.loads((target / "index.json").read_text())
    assert sorted(i["file"] for i in index["files"]) == sorted(n for n, _ in two_models.values())
    for name, data in two_models.values():
        assert (target / name).read_bytes() == data
        assert f"{sha256_hex(data)}  {name}" in (target / "SHA256SUMS").read_text()
    for variable in ("ZOO_HOME", "TORCH_HOME", "HF_HOME"):  # a machine behind the firewall
        monkeypatch.setenv(variable, str(tmp_path / "fresh" / variable))
    monkeypatch.setenv("ZOO_MIRROR", target.as_uri())
    fetched = _run("fetch", "testzoo:tiny_a", "--offline", "--json")
    assert fetched.exit_code == 0, fetched.output
    assert json.loads(fetched.stdout)[0]["source"] == f"{target.as_uri()}/{two_models['tiny_a'][0]}"


def test_offline_cli_names_the_missing_file(two_models):
    result = _run("fetch", "testzoo:tiny_a", "--offline")
    assert result.exit_code == 5 and two_models["tiny_a"][0] in result.output and "zoo import" in result.output


def test_fetch_url_in_a_real_process_prints_the_verified_path(http_server):  # noqa: F811
    data = b"\x01\x02" * 400_000
    url = http_server.add("blob.bin", data)
    process = subprocess.run(
        [sys.executable, "-m", "zoo", "fetch", url, "--sha256", sha256_hex(data), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    (item,) = json.loads(process.stdout)
    assert open(item["path"], "rb").read() == data and item["source"] == url
    wrong = subprocess.run(
        [sys.executable, "-m", "zoo", "fetch", http_server.url("missing.bin")],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 5 and "404" in wrong.stderr and "Traceback" not in wrong.stderr


def test_prune_spares_a_download_in_progress():
    from filelock import FileLock

    key = "busy-01234567.pth"
    cache.weights_dir().mkdir(parents=True)
    cache.part_path(key).write_bytes(b"partial")
    cache.lock_path(key).parent.mkdir(parents=True)
    with FileLock(str(cache.lock_path(key))):
        assert cache.prune() == [] and cache.part_path(key).exists()
    assert cache.prune() == [cache.part_path(key)] and not cache.part_path(key).exists()


def test_a_pattern_matching_nothing_is_an_error():
    result = _run("fetch", "no_such_model_*")
    assert result.exit_code == 4 and "no_such_model_*" in result.output
