"""The entry-point cache: the same answer as importlib.metadata, read again when sys.path changes."""

from __future__ import annotations

import importlib.metadata
import os
import shutil

import pytest

from zoo import entry_points as cached


def _expected(group: str) -> list[tuple[str, str, str | None]]:
    return sorted(
        (ep.name, ep.value, ep.dist.version if ep.dist else None) for ep in importlib.metadata.entry_points(group=group)
    )


def _found(group: str) -> list[tuple[str, str, str | None]]:
    return sorted((ep.name, ep.value, ep.version) for ep in cached.entry_points(group))


@pytest.mark.parametrize("group", ["zoo", "console_scripts"])
def test_matches_importlib_metadata_cold_and_cached(group):
    assert _found(group) == _expected(group)  # cold: scans and writes the cache
    assert _found(group) == _expected(group)  # warm: read from the cache


def _install_fake_distribution(site, version="1.0"):
    dist_info = site / f"zoo_fake_plugin-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: zoo-fake-plugin\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text("[zoo_fake_group]\nfake = zoo_fake_plugin\n")
    return dist_info


def test_a_distribution_installed_or_removed_is_seen_at_once(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    assert _found("zoo_fake_group") == []

    dist_info = _install_fake_distribution(site)
    assert _found("zoo_fake_group") == [("fake", "zoo_fake_plugin", "1.0")]

    # Unchanged sys.path: the answer comes from the cache, without scanning.
    monkeypatch.setattr(cached, "_scan", lambda group: pytest.fail("scanned although nothing changed"))
    assert _found("zoo_fake_group") == [("fake", "zoo_fake_plugin", "1.0")]
    monkeypatch.undo()
    monkeypatch.syspath_prepend(str(site))

    shutil.rmtree(dist_info)  # pip uninstall
    _install_fake_distribution(site, version="2.0")  # pip install of another version
    assert _found("zoo_fake_group") == [("fake", "zoo_fake_plugin", "2.0")]

    entry_points_txt = site / "zoo_fake_plugin-2.0.dist-info" / "entry_points.txt"
    entry_points_txt.write_text("[zoo_fake_group]\nrenamed = zoo_fake_plugin\n")  # edited in place
    stat = os.stat(entry_points_txt)
    os.utime(entry_points_txt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # in case the clock did not tick
    assert _found("zoo_fake_group") == [("renamed", "zoo_fake_plugin", "2.0")]


def test_an_unreadable_cache_is_rebuilt(tmp_path, monkeypatch):
    from zoo.files import zoo_home

    _found("zoo")
    (cache_file,) = (zoo_home() / "entry-points").glob("zoo-*.json")
    cache_file.write_text("{not json")
    assert _found("zoo") == _expected("zoo")
