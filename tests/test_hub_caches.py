"""The Hugging Face and torch hub caches, shared both ways, against a loopback hub (302 to a CDN host with
X-Linked-Etag), huggingface_hub's own cache readers, and the unchanged timm and torchvision calls offline."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from http_server import http_server  # noqa: F401 - the fixture
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner
from weights_fixtures import sha256_hex, write_registry

from zoo.cli.app import app
from zoo.errors import UnsafeNameError
from zoo.registry import catalogues
from zoo.weights import cache, hub_caches
from zoo.weights.fetching import fetch, fetch_url
from zoo.weights.hub_caches import HubFile
from zoo.weights.sources import FetchError

runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HF = "https://huggingface.co"


def hub_entry(name: str, repo_id: str, filename: str = "model.safetensors", **weights) -> dict:
    """A `[[models]]` table for a timm-style hub file with no hash in the registry (the hub's is used)."""
    url = f"{HF}/{repo_id}/resolve/main/{filename}"
    return {
        "name": name,
        "family": "testzoo",
        "builder": "timm:create_model",
        "weights": [{"tag": "hub", "url": url, "format": "safetensors", **weights}],
    }


@pytest.fixture
def hub(http_server, tmp_path, monkeypatch):  # noqa: F811
    """The loopback server as HF_ENDPOINT, serving `timm/tiny_hub` and registered as `testzoo:tiny_hub`."""
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    monkeypatch.setenv("ZOO_FETCH_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "1")
    data = os.urandom(300_000)
    http_server.add_hub_file("timm/tiny_hub", "model.safetensors", data, commit=COMMIT)
    monkeypatch.setenv(
        "ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [hub_entry("tiny_hub", "timm/tiny_hub")]))
    )
    catalogues.reset()
    return data


def _hub_file(repo: str = "timm/tiny_hub") -> HubFile:
    return HubFile("model", repo, "main", "model.safetensors")


# URLs, endpoints, headers ------------------------------------------------------------------------------


def test_hub_file_reads_resolve_urls_and_refuses_unsafe_parts(monkeypatch):
    assert hub_caches.hub_file(f"{HF}/timm/resnet50.a1_in1k/resolve/main/model.safetensors") == HubFile(
        "model", "timm/resnet50.a1_in1k", "main", "model.safetensors"
    )
    assert hub_caches.hub_file(f"{HF}/datasets/o/d/resolve/{COMMIT}/sub/x.bin?download=1") == HubFile(
        "dataset", "o/d", COMMIT, "sub/x.bin"
    )
    assert hub_caches.hub_file("https://download.pytorch.org/models/resnet18-f37072fd.pth") is None
    assert hub_caches.hub_file(f"{HF}/timm/resnet50/blob/main/model.safetensors") is None  # not a resolve URL
    for hostile in ("timm/..%2f../resolve/main/m", "timm/x/resolve/main/..%2F..%2Fm", "timm/x/resolve/..%2f/m"):
        with pytest.raises(UnsafeNameError):
            hub_caches.hub_file(f"{HF}/{hostile}")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.internal:8080/hf/")
    url = f"{HF}/timm/a/resolve/main/model.safetensors"
    assert hub_caches.endpoint_url(url) == "http://mirror.internal:8080/hf/timm/a/resolve/main/model.safetensors"
    assert hub_caches.hub_file(hub_caches.endpoint_url(url)) == hub_caches.hub_file(url)
    assert hub_caches.endpoint_url("https://download.pytorch.org/x.pth") == "https://download.pytorch.org/x.pth"


_repo_part = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,20}[A-Za-z0-9])?", fullmatch=True).filter(
    lambda n: "--" not in n and ".." not in n  # what huggingface_hub's validate_repo_id accepts
)
_name = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\\"), min_size=1, max_size=20)
_name = _name.filter(lambda n: n.strip(". ") and ":" not in n[:2])


@settings(max_examples=60, deadline=None)
@given(org=_repo_part, repo=_repo_part, revision=_name, parts=st.lists(_name, min_size=1, max_size=3))
def test_hub_file_round_trips_what_huggingface_hub_builds(org, repo, revision, parts):
    from huggingface_hub import hf_hub_url

    filename = "/".join(parts)
    url = hf_hub_url(f"{org}/{repo}", filename, revision=revision, endpoint=HF)
    assert hub_caches.hub_file(url) == HubFile("model", f"{org}/{repo}", revision, filename)


def test_hub_answer_takes_an_lfs_sha256_only():
    sha = "ab" * 32
    answer = hub_caches.hub_answer(
        {"x-linked-etag": f'W/"{sha.upper()}"', "x-repo-commit": COMMIT, "x-linked-size": "7"}
    )
    assert answer == hub_caches.HubAnswer(sha, COMMIT, 7)
    assert hub_caches.hub_answer({"x-linked-etag": '"' + "a" * 40 + '"'}).sha256 is None  # a git sha1: no sha256
    assert hub_caches.hub_answer({"etag": f'"{sha}"'}) == hub_caches.HubAnswer()  # a CDN's ETag says nothing


def test_auth_headers_go_to_the_hub_endpoint_only(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    assert hub_caches.auth_headers(f"{HF}/timm/a/resolve/main/m") == {"Authorization": "Bearer hf_secret"}
    for other in ("https://cdn-lfs.huggingface.co/x", "http://huggingface.co/x", "https://huggingface.co:444/x"):
        assert hub_caches.auth_headers(other) == {}
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert hub_caches.auth_headers(f"{HF}/timm/a/resolve/main/m") == {}
    assert hub_caches.auth_headers("http://127.0.0.1:9/timm/a/resolve/main/m") != {}


def test_the_token_is_the_one_huggingface_hub_would_send(tmp_path, monkeypatch):
    from huggingface_hub.utils import get_token

    token_file = tmp_path / "hf-token"
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    assert hub_caches.hub_token() is None
    token_file.write_text("hf_from_login\n")  # what `hf auth login` leaves
    assert hub_caches.hub_token() == "hf_from_login"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert hub_caches.hub_token() == "hf_from_env"
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    assert hub_caches.hub_token() is None
    monkeypatch.delenv("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    monkeypatch.delenv("HF_TOKEN")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))  # its constants froze at import
    assert get_token() == hub_caches.hub_token() == "hf_from_login"


def test_the_hugging_face_cache_dir_follows_huggingface_hub_for_every_variable(tmp_path):
    """zoo reads the variables at each call, huggingface_hub at import: compare, reloading its constants for
    each case (torch's checkpoint folder is compared in the torchvision test below, which imports torch)."""
    cases = [
        {},
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HOME": str(tmp_path / "home"), "HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
        {"HF_HUB_CACHE": str(tmp_path / "hub"), "HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
        {"HF_HOME": "~/hf"},
    ]
    script = textwrap.dedent(
        """
        import importlib, json, os, sys
        import huggingface_hub.constants as constants
        from zoo.weights import hub_caches
        out = []
        for case in json.loads(sys.argv[1]):
            for v in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
                os.environ.pop(v, None)
            os.environ.update(case)
            importlib.reload(constants)
            out.append([constants.HF_HUB_CACHE, str(hub_caches.hub_cache_dir())])
        print(json.dumps(out))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "HF_HOME"}
    process = subprocess.run(
        [sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True, env=env, timeout=120
    )
    assert process.returncode == 0, process.stderr
    for case, (theirs, ours) in zip(cases, json.loads(process.stdout), strict=True):
        assert ours == theirs, case


# Full hashes from the hub ------------------------------------------------------------------------------


def test_a_hub_file_is_verified_against_the_hubs_sha256_and_recorded(hub, http_server):  # noqa: F811
    result = fetch("testzoo:tiny_hub")
    assert result.path.read_bytes() == hub and result.sha256 == sha256_hex(hub)
    assert (result.verified, result.commit, result.notes) == ("hub", COMMIT, ())
    record = cache.read_record(cache.cache_key(f"{HF}/timm/tiny_hub/resolve/main/model.safetensors", None))
    assert (record.sha256, record.verified, record.commit) == (sha256_hex(hub), "hub", COMMIT)
    paths = [r.path for r in http_server.requests]
    assert paths == ["timm/tiny_hub/resolve/main/model.safetensors", f"cdn/{sha256_hex(hub)}"]
    again = fetch("testzoo:tiny_hub")
    assert (again.source, again.verified, again.commit) == ("cache", "hub", COMMIT)


def test_zoo_info_says_where_a_hub_files_hash_comes_from(hub):
    before = runner.invoke(app, ["info", "testzoo:tiny_hub"])
    assert before.exit_code == 0, before.output
    assert "sha256 from the Hugging Face hub when fetched" in before.output and "no hash" not in before.output
    fetch("testzoo:tiny_hub")
    after = runner.invoke(app, ["info", "testzoo:tiny_hub", "--json"])
    (weights,) = json.loads(after.stdout)["weights"]
    assert weights["hash_check"] == f"sha256 {sha256_hex(hub)}, the Hugging Face hub's" and weights["cached"]


def test_a_download_cut_short_resumes_and_still_checks_the_hubs_sha256(hub, http_server):  # noqa: F811
    cdn = f"cdn/{sha256_hex(hub)}"
    http_server.truncate(cdn, at=len(hub) // 2)
    result = fetch("testzoo:tiny_hub")
    assert (result.verified, result.commit) == ("hub", COMMIT) and result.path.read_bytes() == hub
    cdn_requests = http_server.requests_for(cdn)
    assert [r.range for r in cdn_requests] == [None, f"bytes={len(hub) // 2}-"]  # resumed at the CDN
    assert len(http_server.requests_for("timm/tiny_hub/resolve/main/model.safetensors")) == 2  # asked the hub again


def test_a_gated_file_asked_by_huggingface_hub_with_head_gets_a_bodiless_401(http_server, monkeypatch):  # noqa: F811
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    http_server.add_hub_file("org/gated", "model.safetensors", b"x" * 100, token="hf_right")
    url = hf_hub_url("org/gated", "model.safetensors", endpoint=http_server.base_url)
    with pytest.raises(HfHubHTTPError):
        get_hf_file_metadata(url, token=False)
    metadata = get_hf_file_metadata(url, token="hf_right")  # the same connection pool: no stray body
    assert (metadata.etag, metadata.size) == (sha256_hex(b"x" * 100), 100)


def test_a_file_the_cdn_corrupts_is_refused_with_both_hashes(hub, http_server):  # noqa: F811
    http_server.corrupt(f"cdn/{sha256_hex(hub)}")
    result = runner.invoke(app, ["fetch", "testzoo:tiny_hub"])
    assert result.exit_code == 5, result.output
    assert sha256_hex(hub) in result.output and "X-Linked-Etag" in result.output and ".bad" in result.output
    assert cache.cached_files() == []
    assert not (hub_caches.hub_cache_dir() / "models--timm--tiny_hub").exists()


def test_the_registrys_sha256_wins_over_the_hubs(http_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    data = os.urandom(1000)
    http_server.add_hub_file("timm/changed", "model.safetensors", data)  # the hub's file changed since
    entry = hub_entry("changed", "timm/changed", sha256="0" * 64)
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    with pytest.raises(FetchError, match="the registry's sha256"):
        fetch("testzoo:changed")


def test_a_hub_file_without_a_sha256_is_fetched_and_says_so(http_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    data = os.urandom(2000)
    http_server.add_hub_file("timm/small", "model.safetensors", data, etag=None)  # a non-LFS file
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [hub_entry("small", "timm/small")])))
    catalogues.reset()
    result = runner.invoke(app, ["fetch", "testzoo:small", "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)
    assert item["verified"] == "" and "checked against nothing" in item["notes"][0]
    assert "checked against nothing" in runner.invoke(app, ["fetch", "testzoo:small"]).output


def test_hf_token_goes_to_the_hub_only_never_to_the_cdn_or_a_zoo_mirror(http_server, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    monkeypatch.setenv("ZOO_MIRROR", f"{http_server.base_url}/zoo-mirror")  # on the hub's own host: still no token
    data = os.urandom(5000)
    http_server.add_hub_file("org/gated", "model.safetensors", data, token="hf_right")
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [hub_entry("gated", "org/gated")])))
    catalogues.reset()
    with pytest.raises(FetchError, match="HTTP 401.*set HF_TOKEN"):
        fetch("testzoo:gated")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(FetchError, match="a Hugging Face token was sent"):
        fetch("testzoo:gated")
    monkeypatch.setenv("HF_TOKEN", "hf_right")
    assert fetch("testzoo:gated").path.read_bytes() == data
    seen = {(r.path.split("/")[0], r.authorization) for r in http_server.requests}
    assert seen == {
        ("zoo-mirror", None),
        ("org", None),
        ("org", "Bearer hf_wrong"),
        ("org", "Bearer hf_right"),
        ("cdn", None),
    }


# Reading the shared caches -----------------------------------------------------------------------------


def _hf_download(server) -> str:
    """huggingface_hub's own download from the loopback hub (its constants froze at import: pass the cache)."""
    from huggingface_hub import hf_hub_download

    return hf_hub_download(
        "timm/tiny_hub", "model.safetensors", endpoint=server.base_url, cache_dir=hub_caches.hub_cache_dir()
    )


def test_a_file_huggingface_hub_downloaded_is_reused_after_its_hash_is_checked(hub, http_server):  # noqa: F811
    theirs = _hf_download(http_server)
    assert Path(theirs).read_bytes() == hub
    before = len(http_server.requests)
    result = fetch("testzoo:tiny_hub", offline=True)
    assert (result.source, result.verified, result.commit) == ("Hugging Face cache", "hub", COMMIT)
    assert result.path.read_bytes() == hub and len(http_server.requests) == before
    assert os.path.samefile(result.path, theirs)  # a hard link to huggingface_hub's blob, not a copy


def test_a_tampered_blob_in_the_hugging_face_cache_is_not_reused(hub, http_server):  # noqa: F811
    theirs = Path(_hf_download(http_server))
    blob = Path(os.path.realpath(theirs))
    blob.write_bytes(hub[:-1] + bytes([hub[-1] ^ 1]))  # its name still claims the original sha256
    with pytest.raises(FetchError, match="offline"):
        fetch("testzoo:tiny_hub", offline=True)
    result = fetch("testzoo:tiny_hub")  # online: downloaded again, verified, and the blob put right
    assert result.source == f"{http_server.base_url}/timm/tiny_hub/resolve/main/model.safetensors"
    assert blob.read_bytes() == hub


@pytest.mark.parametrize(
    ("value", "offline"), [("1", True), ("ON", True), ("yes", True), ("True", True), ("0", False), ("", False)]
)
def test_hf_hub_offline_reads_as_huggingface_hub_reads_it(value, offline, monkeypatch):
    import importlib

    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert hub_caches.hub_offline() is offline
    try:
        assert importlib.reload(constants).HF_HUB_OFFLINE is offline
    finally:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        importlib.reload(constants)


def test_hf_hub_offline_means_offline(hub, http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FetchError, match="offline"):
        fetch("testzoo:tiny_hub")
    assert http_server.requests == []


# Writing the shared caches -----------------------------------------------------------------------------


def test_a_downloaded_hub_file_lands_where_huggingface_hub_looks(hub):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    result = fetch("testzoo:tiny_hub")
    root = hub_caches.hub_cache_dir()
    found = try_to_load_from_cache("timm/tiny_hub", "model.safetensors", cache_dir=root)
    assert found == str(root / "models--timm--tiny_hub" / "snapshots" / COMMIT / "model.safetensors")
    assert result.shared == (found,) and Path(found).read_bytes() == hub
    assert os.readlink(found) == f"../../blobs/{sha256_hex(hub)}"  # relative, as huggingface_hub writes it
    assert os.path.samefile(found, result.path)  # a hard link: no second copy on the disk
    (repo,) = scan_cache_dir(root).repos
    (revision,) = repo.revisions
    assert (repo.repo_id, revision.commit_hash, revision.refs, repo.size_on_disk) == (
        "timm/tiny_hub",
        COMMIT,
        frozenset({"main"}),
        len(hub),
    )
    assert [f.blob_path.name for f in revision.files] == [sha256_hex(hub)]


@settings(max_examples=25, deadline=None)
@given(
    org=_repo_part,
    repo=_repo_part,
    revision=st.sampled_from(["main", "v1.0", COMMIT]),
    parts=st.lists(_name, min_size=1, max_size=3),
    data=st.binary(min_size=1, max_size=64),
)
def test_placed_files_are_found_by_huggingface_hub_for_any_name(org, repo, revision, parts, data, tmp_path_factory):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    root = tmp_path_factory.mktemp("hf")
    os.environ["HF_HUB_CACHE"] = str(root)  # (conftest's monkeypatch restores the environment)
    source = root.parent / f"{root.name}.src"
    source.write_bytes(data)
    hub = HubFile("model", f"{org}/{repo}", revision, "/".join(parts))
    commit = hashlib.sha1(data).hexdigest()
    placed = hub_caches.place_in_hub_cache(source, hub, hashlib.sha256(data).hexdigest(), commit)
    found = try_to_load_from_cache(hub.repo_id, hub.filename, cache_dir=root, revision=revision)
    expected = revision if revision == COMMIT else commit  # a commit as revision: that snapshot, no ref
    assert found == str(placed.path) and Path(found).read_bytes() == data and f"/{expected}/" in found
    (cached,) = scan_cache_dir(root).repos
    assert (cached.repo_id, cached.size_on_disk) == (hub.repo_id, len(data))


def test_a_ref_moves_only_with_the_hubs_own_answer(hub, http_server):  # noqa: F811
    import shutil as shutil_

    fetch("testzoo:tiny_hub")
    repo = hub_caches.hub_cache_dir() / "models--timm--tiny_hub"
    newer = "f" * 40
    (repo / "refs" / "main").write_text(newer)  # huggingface_hub moved main on since, and the old snapshot went
    shutil_.rmtree(repo / "snapshots" / COMMIT)
    again = fetch("testzoo:tiny_hub")  # a cache hit puts the snapshot back, but leaves main where it is
    assert again.shared and (repo / "snapshots" / COMMIT / "model.safetensors").read_bytes() == hub
    assert (repo / "refs" / "main").read_text() == newer
    moved = "e" * 40
    http_server.add_hub_file("timm/tiny_hub", "model.safetensors", hub, commit=moved)  # the hub's main moved
    fetch("testzoo:tiny_hub", force=True)
    assert (repo / "refs" / "main").read_text() == moved


def test_no_share_and_the_config_setting_keep_the_other_caches_untouched(hub, tmp_path, monkeypatch):
    result = runner.invoke(app, ["fetch", "testzoo:tiny_hub", "--no-share", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["shared"] == [] and not hub_caches.hub_cache_dir().exists()
    config = tmp_path / "config.toml"
    config.write_text("share = false\n")
    monkeypatch.setenv("ZOO_CONFIG", str(config))
    assert fetch("testzoo:tiny_hub", force=True).shared == () and not hub_caches.hub_cache_dir().exists()
    config.write_text('share = "no"\n')
    assert "'share' must be true or false" in runner.invoke(app, ["fetch", "testzoo:tiny_hub"]).output
    config.write_text("share = true\n")
    assert fetch("testzoo:tiny_hub").shared != ()  # a cache hit shares what is missing


def test_a_torchvision_style_file_lands_in_torch_hub_and_a_different_one_is_left_alone(http_server):  # noqa: F811
    data = os.urandom(4000)
    name = f"net-{sha256_hex(data)[:8]}.pth"
    url = http_server.add(f"models/{name}", data)
    assert fetch_url(url).shared == ()  # a URL the registry does not know: no library looks for it
    result = fetch_url(url, share=True)
    target = hub_caches.torch_hub_dir() / name
    assert result.shared == (str(target),) and os.path.samefile(target, result.path)
    other = os.urandom(4000)
    other_name = f"other-{sha256_hex(other)[:8]}.pth"
    (hub_caches.torch_hub_dir() / other_name).write_bytes(b"the user's own file")
    result = fetch_url(http_server.add(f"models/{other_name}", other), share=True)
    refused, kept = result.notes
    assert result.shared == () and "not reused: its sha256 is" in refused and "a different file is already at" in kept
    assert (hub_caches.torch_hub_dir() / other_name).read_bytes() == b"the user's own file"


def test_behind_a_firewall_a_mirror_built_by_zoo_lays_out_the_hub_cache(hub, tmp_path, monkeypatch):
    from huggingface_hub import try_to_load_from_cache

    target = tmp_path / "mirror"
    assert runner.invoke(app, ["mirror", "sync", "testzoo:tiny_hub", "--to", str(target)]).exit_code == 0
    (item,) = json.loads((target / "index.json").read_text())["files"]
    assert item["commit"] == COMMIT and item["sha256"] == sha256_hex(hub)
    for variable in ("ZOO_HOME", "TORCH_HOME", "HF_HOME"):  # another machine, no route to the hub
        monkeypatch.setenv(variable, str(tmp_path / "fresh" / variable))
    monkeypatch.delenv("HF_ENDPOINT")
    monkeypatch.setenv("ZOO_MIRROR", target.as_uri())
    result = fetch("testzoo:tiny_hub", offline=True)
    assert (result.verified, result.commit, result.notes) == ("mirror", COMMIT, ())
    found = try_to_load_from_cache("timm/tiny_hub", "model.safetensors", cache_dir=hub_caches.hub_cache_dir())
    assert result.shared == (found,) and Path(found).read_bytes() == hub
    (target / item["file"]).write_bytes(os.urandom(len(hub)))  # a mirror serving something else is refused
    for variable in ("ZOO_HOME", "HF_HOME"):
        monkeypatch.setenv(variable, str(tmp_path / "third" / variable))
    with pytest.raises(FetchError, match="mirror's index.json"):
        fetch("testzoo:tiny_hub", offline=True, share=False)


def test_a_legacy_torchvision_file_in_torch_hub_whose_content_differs_is_refused_by_name():
    legacy = "https://download.pytorch.org/models/resnet18-5c106cde.pth"  # torchvision's pre-0.13 file
    hub = hub_caches.torch_hub_dir()
    hub.mkdir(parents=True)
    (hub / "resnet18-5c106cde.pth").write_bytes(b"not the file its name claims")
    with pytest.raises(FetchError) as refused:
        fetch_url(legacy, offline=True)
    message = str(refused.value)
    assert "not reused" in message and "torchvision:resnet18" in message and "5c106cde" in message
    assert sha256_hex(b"not the file its name claims") in message


def test_a_url_the_registry_knows_is_shared_when_fetched_as_a_url(http_server, tmp_path, monkeypatch):  # noqa: F811
    data = os.urandom(3000)
    url = http_server.add(f"models/known-{sha256_hex(data)[:8]}.pth", data)
    entry = {"name": "known", "family": "testzoo", "builder": "x:y", "weights": [{"tag": "v1", "url": url}]}
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    assert fetch_url(url).shared == (str(hub_caches.torch_hub_dir() / Path(url).name),)


def test_caches_zoo_cannot_write_give_a_note_not_a_failed_fetch(hub, tmp_path, monkeypatch, http_server):  # noqa: F811
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    monkeypatch.setenv("HF_HUB_CACHE", str(blocker / "hub"))  # mkdir fails: NotADirectoryError
    monkeypatch.setenv("TORCH_HOME", str(blocker / "torch"))
    result = fetch("testzoo:tiny_hub")
    assert result.path.read_bytes() == hub and result.shared == ()
    assert "not placed in the Hugging Face cache: cannot write there (NotADirectoryError" in result.notes[0]
    data = os.urandom(1000)
    plain = fetch_url(http_server.add(f"w-{sha256_hex(data)[:8]}.pth", data), share=True)
    assert plain.shared == () and "not placed in the torch hub cache: cannot write there" in plain.notes[0]


def test_place_in_hub_cache_without_a_commit_says_why():
    source = cache.weights_dir() / "x"
    source.parent.mkdir(parents=True)
    source.write_bytes(b"x")
    placed = hub_caches.place_in_hub_cache(source, _hub_file(), hashlib.sha256(b"x").hexdigest(), None)
    assert placed.path is None and "commit" in placed.note


# Across the catalogue: zoo's place for each timm file is where timm loads it from ----------------------


def test_every_timm_weight_set_is_shared_where_timm_loads_it():
    """All 1,826 tags (a fraction of a second once timm is imported, which the offline test below needs anyway)."""
    import timm
    from huggingface_hub.file_download import repo_folder_name
    from timm.models._hub import _get_safe_alternatives, hf_split

    rows = [
        (w.builder_kwargs.get("model_name") or f"{e.name}.{w.tag}", w)
        for e in catalogues.models()
        if e.family == "timm"
        for w in e.weights
    ]
    assert len(rows) > 1800
    for name, weights in rows:
        cfg = timm.models.get_pretrained_cfg(name)
        hub = hub_caches.hub_file(weights.url)
        if hub is None:  # timm downloads it with torch.hub: $TORCH_HOME/hub/checkpoints/<URL's file name>
            assert not cfg.hf_hub_id and Path(cfg.url).name == Path(weights.url).name, name
            continue
        repo_id, revision = hf_split(cfg.hf_hub_id)
        wanted = cfg.hf_hub_filename or "pytorch_model.bin"
        assert (hub.repo_id, hub.revision) == (repo_id, revision or "main"), name
        assert hub.filename in (wanted, *_get_safe_alternatives(wanted)), name
        assert hub.folder == repo_folder_name(repo_id=repo_id, repo_type="model"), name


# The unchanged user scripts, offline, in a fresh interpreter ------------------------------------------


def _offline_run(script: str, keep_endpoint: bool = False) -> dict:
    """`script` in a fresh interpreter with HF_HUB_OFFLINE=1 and this test's HF_HOME and TORCH_HOME."""
    env = {k: v for k, v in os.environ.items() if k != "ZOO_MIRROR" and (keep_endpoint or k != "HF_ENDPOINT")}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", NO_PROXY="*")
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def _timm_checkpoint(model_name: str) -> tuple[bytes, float]:
    import safetensors.torch
    import timm
    import torch

    torch.manual_seed(1)
    state = timm.create_model(model_name, pretrained=False).state_dict()
    state = {k: v + torch.rand_like(v) if v.is_floating_point() else v for k, v in state.items()}
    return safetensors.torch.save(state), float(state["fc.weight"].sum())


TIMM_SCRIPT = """
import json, timm
model = timm.create_model({name!r}, pretrained=True)
print(json.dumps({{"fc": float(model.state_dict()["fc.weight"].sum())}}))
"""


def _timm_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, model_name: str) -> None:  # noqa: F811
    data, fc = _timm_checkpoint(model_name)
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    http_server.add_hub_file(f"timm/{model_name}", "model.safetensors", data)
    entry = hub_entry(model_name.replace(".", "_"), f"timm/{model_name}")
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    result = runner.invoke(app, ["fetch", f"testzoo:{entry['name']}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["verified"] == "hub"
    requests = len(http_server.requests)
    assert _offline_run(TIMM_SCRIPT.format(name=model_name), keep_endpoint=True)["fc"] == pytest.approx(fc)
    assert len(http_server.requests) == requests  # timm read the cache: it asked the hub (HF_ENDPOINT) nothing


def test_timm_create_model_pretrained_runs_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch):  # noqa: F811
    _timm_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, "test_resnet.r160_in1k")


@pytest.mark.slow
def test_timm_resnet50_a1_in1k_runs_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch):  # noqa: F811
    _timm_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, "resnet50.a1_in1k")


@pytest.mark.slow
def test_timm_runs_offline_behind_a_firewall_after_mirror_sync(http_server, tmp_path, monkeypatch):  # noqa: F811
    model_name = "test_resnet.r160_in1k"
    data, fc = _timm_checkpoint(model_name)
    monkeypatch.setenv("HF_ENDPOINT", http_server.base_url)
    http_server.add_hub_file(f"timm/{model_name}", "model.safetensors", data)
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [hub_entry("t", f"timm/{model_name}")])))
    catalogues.reset()
    target = tmp_path / "mirror"
    assert runner.invoke(app, ["mirror", "sync", "testzoo:t", "--to", str(target)]).exit_code == 0
    for variable in ("ZOO_HOME", "TORCH_HOME", "HF_HOME"):  # the machine behind the firewall
        monkeypatch.setenv(variable, str(tmp_path / "inside" / variable))
    monkeypatch.delenv("HF_ENDPOINT")
    result = runner.invoke(app, ["fetch", "testzoo:t", "--mirror", target.as_uri(), "--offline", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["verified"] == "mirror"
    assert _offline_run(TIMM_SCRIPT.format(name=model_name))["fc"] == pytest.approx(fc)


TORCHVISION_SCRIPT = """
import json, os, torch.hub, torchvision
model = torchvision.models.{builder}(weights="DEFAULT")
print(json.dumps({{"fc": float(model.state_dict()["fc.weight"].sum()), "dir": torch.hub.get_dir()}}))
"""


def _torchvision_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, builder: str) -> None:  # noqa: F811
    import io

    import torch
    import torchvision

    torch.manual_seed(2)
    state = getattr(torchvision.models, builder)().state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    url = torchvision.models.get_model_weights(builder).DEFAULT.url  # resnet18-f37072fd.pth
    served = http_server.add(f"mirror/{Path(url).name}", data)
    entry = {
        "name": f"tv_{builder}",
        "family": "testzoo",
        "builder": f"torchvision.models:{builder}",
        "weights": [{"tag": "v1", "url": url, "sha256": sha256_hex(data), "mirrors": [served]}],
    }
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    result = runner.invoke(app, ["fetch", f"testzoo:tv_{builder}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["shared"] == [str(hub_caches.torch_hub_dir() / Path(url).name)]
    fc = float(state["fc.weight"].sum())
    loaded = _offline_run(TORCHVISION_SCRIPT.format(builder=builder))
    assert loaded["fc"] == pytest.approx(fc)
    assert Path(loaded["dir"]) / "checkpoints" == hub_caches.torch_hub_dir()  # torch's own idea of the place


def test_torchvision_weights_default_runs_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch):  # noqa: F811
    _torchvision_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, "resnet18")


@pytest.mark.slow
def test_torchvision_resnet50_default_runs_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch):  # noqa: F811
    _torchvision_offline_after_zoo_fetch(http_server, tmp_path, monkeypatch, "resnet50")
