"""zoo.fetch against a real loopback HTTP server: verification, quarantine, resume, retries, mirrors, offline."""

from __future__ import annotations

import builtins
import errno
import os
import socket
import subprocess
import sys

import pytest
from http_server import http_server  # noqa: F401 - the fixture
from weights_fixtures import checkpoint_bytes, hashed_name, registry_entry, sha256_hex, tiny_state_dict, write_registry

import zoo
from zoo.registry import catalogues
from zoo.weights import cache
from zoo.weights.fetching import fetch, fetch_url
from zoo.weights.sources import FetchError


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setenv("ZOO_FETCH_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "3")


@pytest.fixture
def tiny(http_server, tmp_path, monkeypatch, fast_retries):  # noqa: F811
    """A generated checkpoint served on loopback, and a test registry entry `testzoo:tinynet` pointing at it."""
    data = checkpoint_bytes(tiny_state_dict())
    name = hashed_name("tinynet", data)
    url = http_server.add(f"models/{name}", data)
    registry = write_registry(
        tmp_path / "test-registry.toml",
        [
            registry_entry("tinynet", url, data, family="testzoo", builder="x:y"),
        ],
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    catalogues.reset()
    return data, name, url, f"models/{name}"


def test_fetch_downloads_verifies_and_caches_then_reuses(tiny, http_server):  # noqa: F811
    data, name, url, path = tiny
    result = zoo.fetch("testzoo:tinynet.v1")
    assert result.path == cache.weights_dir() / name and result.path.read_bytes() == data
    assert (result.sha256, result.size, result.source, result.name, result.tag) == (
        sha256_hex(data),
        len(data),
        url,
        "testzoo:tinynet",
        "v1",
    )
    assert cache.read_record(name).sha256 == sha256_hex(data)
    again = fetch("tinynet")
    assert again.source == "cache" and again.path == result.path
    assert len(http_server.requests_for(path)) == 1
    assert not list(cache.weights_dir().glob("*.part"))


def test_sha256_is_computed_while_streaming_without_a_second_pass(tiny, monkeypatch):
    opened = []
    real_open = builtins.open

    def spy(file, mode="r", *args, **kwargs):
        opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    monkeypatch.setattr(cache, "hash_file", lambda *a: pytest.fail("the downloaded file was re-read to hash it"))
    result = fetch("tinynet")
    reads = [f for f, mode in opened if "r" in mode and "+" not in mode and f.endswith((".part", ".pth"))]
    assert reads == [] and result.sha256 == sha256_hex(tiny[0])


def test_wrong_bytes_are_quarantined_as_bad_with_expected_and_actual_hash(tiny, http_server):  # noqa: F811
    data, name, _, path = tiny
    http_server.corrupt(path)
    with pytest.raises(FetchError) as error:
        fetch("tinynet")
    message = str(error.value)
    assert sha256_hex(data) in message and "expected" in message and ".bad" in message
    bad = cache.weights_dir() / f"{name}.bad"
    assert bad.is_file() and bad.read_bytes() != data and len(bad.read_bytes()) == len(data)
    assert sha256_hex(bad) in message
    assert not (cache.weights_dir() / name).exists()


def test_generated_file_is_refused_under_an_official_torchvision_name(http_server, monkeypatch, fast_retries):  # noqa: F811
    data = checkpoint_bytes(tiny_state_dict())
    http_server.add("resnet18-f37072fd.pth", data)
    monkeypatch.setenv("ZOO_MIRROR", http_server.base_url)
    with pytest.raises(FetchError) as error:
        fetch("torchvision:resnet18")
    assert "f37072fd" in str(error.value) and sha256_hex(data) in str(error.value)
    assert not (cache.weights_dir() / "resnet18-f37072fd.pth").exists()
    assert (cache.weights_dir() / "resnet18-f37072fd.pth.bad").is_file()
    assert [r.status for r in http_server.requests] == [200]


def test_truncated_body_fails_content_length_check_then_resumes_with_range(tiny, http_server):  # noqa: F811
    data, name, _, path = tiny
    http_server.truncate(path, at=len(data) // 3, times=None)
    with pytest.raises(FetchError, match=f"closed the connection after {len(data) // 3:,} of {len(data):,} bytes"):
        fetch("tinynet")
    assert not (cache.weights_dir() / name).exists()
    assert (cache.weights_dir() / f"{name}.part").stat().st_size == len(data) // 3
    http_server.clear_faults()
    result = fetch("tinynet")
    assert result.path.read_bytes() == data
    assert http_server.requests_for(path)[-1].range == f"bytes={len(data) // 3}-"


def test_500s_are_retried_then_succeed_and_a_reset_resumes(tiny, http_server):  # noqa: F811
    data, _, _, path = tiny
    http_server.fail(path, status=500, times=2)
    http_server.fail(path, status=503, times=1)
    http_server.reset(path, at=len(data) // 2, times=1)
    result = fetch("tinynet")
    assert result.path.read_bytes() == data and result.sha256 == sha256_hex(data)
    statuses = [r.status for r in http_server.requests_for(path)]
    assert statuses[:3] == [500, 500, 503] and statuses[-1] == 206


def test_4xx_fails_at_once_with_url_and_status(tiny, http_server):  # noqa: F811
    _, _, url, path = tiny
    http_server.fail(path, status=403, times=None)
    with pytest.raises(FetchError) as error:
        fetch("tinynet")
    assert url in str(error.value) and "403" in str(error.value)
    assert len(http_server.requests_for(path)) == 1
    assert not list(cache.weights_dir().rglob("*.part"))


def test_a_server_without_range_support_restarts_from_zero(tiny, http_server):  # noqa: F811
    data, _, _, path = tiny
    http_server.no_range(path)
    http_server.truncate(path, at=1000, times=1)
    assert fetch("tinynet").path.read_bytes() == data
    assert [r.status for r in http_server.requests_for(path)] == [200, 200]


def test_mirrors_are_tried_in_order_before_the_origin(tiny, http_server, monkeypatch):  # noqa: F811
    data, name, url, path = tiny
    http_server.add(f"mirror-b/{name}", data)
    monkeypatch.setenv("ZOO_MIRROR", f"{http_server.base_url}/mirror-b")
    result = fetch("tinynet", mirrors=[f"{http_server.base_url}/mirror-a"])
    assert result.source == f"{http_server.base_url}/mirror-b/{name}"
    assert [r.path for r in http_server.requests] == [f"mirror-a/{name}", f"mirror-b/{name}"]
    assert not http_server.requests_for(path)


def test_mirror_mapping_in_the_config_file(http_server, tmp_path, monkeypatch, fast_retries):  # noqa: F811
    data = checkpoint_bytes(tiny_state_dict(1))
    name = hashed_name("mapped", data)
    http_server.add(f"internal/{name}", data)
    origin = f"http://origin.invalid/models/{name}"  # .invalid never resolves: only the mapping can work
    registry = write_registry(tmp_path / "r.toml", [registry_entry("mapped", origin, data, family="testzoo")])
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    (cache.zoo_home() / "config.toml").write_text(
        f'[mirror_map]\n"http://origin.invalid/models/" = "{http_server.base_url}/internal/"\n'
    )
    assert fetch("testzoo:mapped").source == f"{http_server.base_url}/internal/{name}"


def test_registry_entry_mirrors_are_used(http_server, tmp_path, monkeypatch, fast_retries):  # noqa: F811
    data = checkpoint_bytes(tiny_state_dict(2))
    name = hashed_name("withmirror", data)
    mirror = http_server.add(name, data)
    registry = write_registry(
        tmp_path / "r.toml",
        [registry_entry("withmirror", f"http://origin.invalid/{name}", data, family="testzoo", mirrors=[mirror])],
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    assert fetch("testzoo:withmirror").source == mirror


def _no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_offline_opens_no_socket(tiny, monkeypatch):
    data, name, _, _ = tiny
    _no_sockets(monkeypatch)
    with pytest.raises(AssertionError, match="socket was opened"):  # proves the guard works
        fetch("tinynet")
    with pytest.raises(FetchError) as error:
        fetch("tinynet", offline=True)
    assert name in str(error.value) and "zoo import" in str(error.value)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(FetchError, match="offline"):
        fetch("tinynet")
    monkeypatch.undo()
    fetch("tinynet")  # online now: cached
    _no_sockets(monkeypatch)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert fetch("tinynet").source == "cache"


def test_torch_hub_cache_file_with_matching_hash_is_reused(tiny, http_server):  # noqa: F811
    data, name, _, _ = tiny
    hub = cache.torch_hub_dir()
    hub.mkdir(parents=True)
    (hub / name).write_bytes(data)
    result = fetch("tinynet")
    assert result.source == "torch hub cache" and result.path.read_bytes() == data
    assert http_server.requests == []


def test_torch_hub_cache_file_with_wrong_hash_is_ignored(tiny, http_server):  # noqa: F811
    data, name, url, _ = tiny
    hub = cache.torch_hub_dir()
    hub.mkdir(parents=True)
    (hub / name).write_bytes(data[:-10] + b"0123456789")
    assert fetch("tinynet").source == url


def test_fetch_url_verifies_given_sha256_and_file_name_prefix(http_server, fast_retries):  # noqa: F811
    data = b"x" * 300_000
    url = http_server.add("plain.bin", data)
    with pytest.raises(FetchError, match="expected"):
        fetch_url(url, sha256="0" * 64)
    result = fetch_url(url, sha256=sha256_hex(data))
    assert result.path.read_bytes() == data and result.name is None
    bad_prefix = http_server.add("thing-deadbeef.bin", data)
    with pytest.raises(FetchError, match="deadbeef"):
        fetch_url(bad_prefix)


def test_a_plugin_weight_source_is_hashed_verified_and_cached_like_http(add_plugin, tmp_path, monkeypatch):
    import io

    data = checkpoint_bytes(tiny_state_dict(3))
    name = hashed_name("pkgnet", data)
    opened = []

    class PackageSource:
        def open(self, url, offset=0):
            opened.append((url, offset))
            payload = data if url.endswith(name) else b"not the bytes"
            return zoo.OpenedSource(io.BytesIO(payload[offset:]), size=len(payload), resumed=True)

    class Plugin:
        @zoo.hookimpl
        def register_weight_sources(self, register):
            register("pkg", PackageSource())

    add_plugin(Plugin(), "pkg-plugin")
    registry = write_registry(
        tmp_path / "r.toml",
        [
            registry_entry("pkgnet", f"pkg:team/{name}", data, family="testzoo"),
            registry_entry("pkgbad", "pkg:team/pkgbad-00000000.pth", None, family="testzoo"),
        ],
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    result = fetch("testzoo:pkgnet")
    assert result.path.read_bytes() == data and result.source == f"pkg:team/{name}"
    assert opened == [(f"pkg:team/{name}", 0)]
    with pytest.raises(FetchError, match="00000000"):
        fetch("testzoo:pkgbad")
    assert (cache.weights_dir() / "pkgbad-00000000.pth.bad").is_file()


@pytest.mark.parametrize("local", [True, False])
def test_offline_uses_only_plugin_sources_that_declare_local(add_plugin, tmp_path, monkeypatch, local):
    import io

    data = checkpoint_bytes(tiny_state_dict(4))
    name = hashed_name("pkgnet", data)

    class PackageSource:
        def open(self, url, offset=0):
            return zoo.OpenedSource(io.BytesIO(data[offset:]), size=len(data), resumed=True)

    PackageSource.local = local

    class Plugin:
        @zoo.hookimpl
        def register_weight_sources(self, register):
            register("pkg", PackageSource())

    add_plugin(Plugin(), "pkg-plugin")
    registry = write_registry(tmp_path / "r.toml", [registry_entry("pkgnet", f"pkg:team/{name}", data, family="t")])
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    _no_sockets(monkeypatch)
    if local:
        assert fetch("t:pkgnet", offline=True).path.read_bytes() == data
    else:
        with pytest.raises(FetchError, match="offline"):
            fetch("t:pkgnet", offline=True)


def test_unknown_scheme_names_the_scheme(tmp_path, monkeypatch):
    with pytest.raises(FetchError, match="'nope'"):
        fetch_url("nope://x/y-12345678.pth")


def test_file_urls_work_offline(tmp_path, monkeypatch):
    data = b"local weights" * 1000
    source = tmp_path / hashed_name("local", data, ".bin")
    source.write_bytes(data)
    _no_sockets(monkeypatch)
    result = fetch_url(source.as_uri(), offline=True)
    assert result.path.read_bytes() == data and result.source == source.as_uri()


def test_a_stalled_response_times_out_and_is_retried(tiny, http_server, monkeypatch):  # noqa: F811
    data, _, _, path = tiny
    monkeypatch.setenv("ZOO_FETCH_TIMEOUT", "0.2")
    http_server.slow(path, delay=1.0, times=1)  # the first response stalls longer than the timeout
    assert fetch("tinynet").path.read_bytes() == data
    assert len(http_server.wait_for_requests(path, 2)) == 2  # the stalled one, then the retry


def test_a_failing_disk_write_ends_the_fetch_with_the_error_and_places_nothing(http_server, tmp_path):  # noqa: F811
    """The writer thread's OSError (here: a file size limit, as a full disk would) reaches the caller, no hang."""
    data = os.urandom(12 << 20)  # three 4 MiB chunks
    url = http_server.add("big/weights.bin", data)
    script = (
        "import resource, signal, sys\n"
        "from zoo.weights.fetching import fetch_url\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (5 << 20, 5 << 20))\n"
        "try:\n"
        f"    fetch_url({url!r}, sha256={sha256_hex(data)!r})\n"
        "except OSError as exc:\n"
        "    print('ERRNO', exc.errno)\n"
    )
    home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ZOO_HOME": str(home), "ZOO_FETCH_RETRIES": "0"},
    )
    assert result.stdout.strip() == f"ERRNO {errno.EFBIG}", result.stderr
    assert not (home / "weights" / "weights.bin").exists()
    assert all(p.stat().st_size <= 5 << 20 for p in (home / "weights").rglob("*") if p.is_file())
