"""Resolve -> download -> verify -> cache: the one way zoo gets a weights file onto the disk.

The verified file appears in the cache by an atomic rename, only after its sha256 (computed while
streaming) matches the registry's full hash or the file name's hash prefix; a mismatch is kept aside
as `<key>.bad`. A file lock per cache key makes concurrent processes download a file once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from zoo.files import replacing
from zoo.registry import catalogues
from zoo.registry.records import Selection, WeightSet, file_name_from_url, hash_prefix_from_file_name
from zoo.weights import cache
from zoo.weights.download import Progress, download
from zoo.weights.mirrors import candidate_urls, offline_requested
from zoo.weights.sources import FetchError, FileSource, HttpSource, OpenedSource, TransientError, scheme_of

LOCAL_SCHEMES = ("file",)


@dataclass(frozen=True)
class FetchResult:
    """A verified file in the cache and where it came from (a URL, "cache", "torch hub cache", "import")."""

    name: str | None
    tag: str | None
    path: Path
    sha256: str
    size: int
    source: str

    def to_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path)}


@dataclass(frozen=True)
class _Wanted:
    """One file to fetch: its origin URL, where it goes in the cache, and how to check it."""

    url: str
    key: str
    sha256: str | None = None
    hash_prefix: str | None = None
    size: int | None = None
    mirrors: tuple[str, ...] = ()
    name: str | None = None
    tag: str | None = None

    @property
    def expected(self) -> str | None:
        return self.sha256 or self.hash_prefix


def fetch(
    spec_or_selection: str | Selection,
    *,
    mirrors: tuple[str, ...] | list[str] = (),
    offline: bool | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch the weights `[family:]name[.tag]` (or a Selection) names into the cache; return the verified file."""
    selection = (
        catalogues.models().resolve(spec_or_selection) if isinstance(spec_or_selection, str) else spec_or_selection
    )
    weights = selection.weights
    if weights is None:
        raise FetchError(f"{selection.entry.qualified_name} has no pretrained weights in the registry")
    return _fetch(wanted_for(selection.entry.qualified_name, weights), mirrors, offline, force, progress)


def fetch_url(
    url: str,
    *,
    sha256: str | None = None,
    file_name: str | None = None,
    mirrors: tuple[str, ...] | list[str] = (),
    offline: bool | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch any URL into the cache, verified against `sha256` or else the file name's hash prefix."""
    name = file_name or file_name_from_url(url)
    wanted = _Wanted(
        url, cache.cache_key(url, name), sha256.lower() if sha256 else None, hash_prefix_from_file_name(name)
    )
    return _fetch(wanted, mirrors, offline, force, progress)


def wanted_for(name: str | None, weights: WeightSet) -> _Wanted:
    return _Wanted(
        weights.url,
        cache.cache_key(weights.url, weights.file_name),
        weights.sha256,
        weights.hash_prefix,
        weights.size,
        weights.mirrors,
        name,
        weights.tag,
    )


def _fetch(wanted: _Wanted, mirrors, offline: bool | None, force: bool, progress: Progress | None) -> FetchResult:
    dest = cache.file_path(wanted.key)
    if not force and (hit := _cached(wanted, dest)):
        return hit
    offline = offline_requested(offline)
    urls = candidate_urls(wanted.url, wanted.key, mirrors, wanted.mirrors)
    if offline:
        urls = [u for u in urls if is_local(u)]
    if not force and (hit := _from_torch_hub(wanted, dest)):
        return hit
    if not urls:
        raise FetchError(
            f"offline and {wanted.key} is not in the cache ({dest}); copy the file there with "
            f"`zoo import FILE`, or set ZOO_MIRROR to a file:// mirror directory, or fetch it online"
        )
    from filelock import FileLock

    lock = cache.lock_path(wanted.key)
    lock.parent.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if not force and (hit := _cached(wanted, dest)):  # another process fetched it while we waited
            return hit
        return _download_first(wanted, dest, urls, progress)


def _cached(wanted: _Wanted, dest: Path) -> FetchResult | None:
    if not dest.is_file():
        return None
    record = cache.read_record(wanted.key)
    size = dest.stat().st_size
    if record is None or record.size != size or not record.sha256:
        sha = cache.hash_file(dest)  # a file zoo did not record: check it once, then record it
        if wanted.expected and not sha.startswith(wanted.expected):
            moved = cache.quarantine(wanted.key)
            raise FetchError(_mismatch(wanted, wanted.expected, sha, moved))
        record = cache.CacheRecord(wanted.key, sha, size, wanted.url, "cache", wanted.name, wanted.tag)
        cache.write_record(record)
    elif wanted.expected and not record.sha256.startswith(wanted.expected):
        return None
    return FetchResult(wanted.name, wanted.tag, dest, record.sha256, size, "cache")


def _from_torch_hub(wanted: _Wanted, dest: Path) -> FetchResult | None:
    """Reuse `$TORCH_HOME/hub/checkpoints/<file name>` when its hash matches what the registry expects."""
    candidate = cache.torch_hub_dir() / Path(wanted.key).name
    if not wanted.expected or not candidate.is_file():
        return None
    sha = cache.hash_file(candidate)
    if not sha.startswith(wanted.expected):
        return None
    cache.place_file(candidate, dest)
    size = dest.stat().st_size
    cache.write_record(cache.CacheRecord(wanted.key, sha, size, wanted.url, str(candidate), wanted.name, wanted.tag))
    return FetchResult(wanted.name, wanted.tag, dest, sha, size, "torch hub cache")


def _download_first(wanted: _Wanted, dest: Path, urls: list[str], progress: Progress | None) -> FetchResult:
    part = cache.part_path(wanted.key)
    failures = []
    started = time.monotonic()  # the file's deadline (zoo.weights.retrying) counts from here, across its URLs
    for url in urls:
        try:
            done = download(
                source_opener(url), url, part, expected_size=wanted.size, progress=progress, started=started
            )
        except FetchError as exc:  # permanent (4xx), or transient retried until given up: try the next URL
            failures.append(str(exc))
            if part.exists() and (not isinstance(exc, TransientError) or part.stat().st_size == 0):
                part.unlink()
            continue
        return _install(wanted, dest, part, done.sha256, done.size, url)
    if len(failures) == 1:  # one URL: its error says it all
        raise FetchError(failures[0])
    raise FetchError(f"could not fetch {Path(wanted.key).name}: {'; '.join(failures)}")


def _install(wanted: _Wanted, dest: Path, part: Path, sha: str, size: int, url: str) -> FetchResult:
    if wanted.expected and not sha.startswith(wanted.expected) or wanted.size not in (None, size):
        bad = cache.bad_path(wanted.key)
        os.replace(part, bad)
        if wanted.expected and not sha.startswith(wanted.expected):
            raise FetchError(_mismatch(wanted, wanted.expected, sha, bad, url))
        raise FetchError(f"{url}: got {size} bytes, the registry expects {wanted.size}; kept aside as {bad}")
    os.replace(part, dest)
    cache.write_record(cache.CacheRecord(wanted.key, sha, size, wanted.url, url, wanted.name, wanted.tag))
    return FetchResult(wanted.name, wanted.tag, dest, sha, size, url)


def _mismatch(wanted: _Wanted, expected: str, actual: str, moved: Path, url: str | None = None) -> str:
    what = "full sha256" if wanted.sha256 else "hash prefix in its file name"
    origin = f" from {url}" if url else ""
    return (
        f"{wanted.key}{origin} failed verification: expected sha256 {expected} ({what}), got {actual}; "
        f"the file was kept aside as {moved} and not placed in the cache"
    )


def is_local(url: str) -> bool:
    """Whether reading `url` needs no network: `file`, or a weight source that declares `local = True`."""
    scheme = scheme_of(url)
    return scheme in LOCAL_SCHEMES or bool(getattr(catalogues.weight_sources().get(scheme), "local", False))


def source_opener(url: str) -> Callable[[str, int], OpenedSource]:
    """`open(url, offset)` of the weight source registered for the URL's scheme."""
    scheme = scheme_of(url)
    source = catalogues.weight_sources().get(scheme)
    if source is None:
        source = {"http": HttpSource, "https": HttpSource, "file": FileSource}.get(scheme, lambda: None)()
    if source is None:
        known = ", ".join(catalogues.weight_sources().names()) or "http, https, file"
        raise FetchError(f"no weight source for URL scheme {scheme!r} in {url} (known: {known}); install its plugin")
    return lambda u, offset: source.open(u, offset=offset)


def matching_weights(sha256: str, spec: str | None = None) -> list[Selection]:
    """Registry weight sets whose full hash, or file-name hash prefix, matches `sha256`."""
    if spec is not None:
        entries = [catalogues.models().resolve(spec).entry]
    else:
        entries = list(catalogues.models())
    return [
        Selection(entry, weights)
        for entry in entries
        for weights in entry.weights
        if weights.expected_hash and sha256.startswith(weights.expected_hash)
    ]


def import_file(path: str | Path, spec: str | None = None) -> list[FetchResult]:
    """Copy a weights file someone already has into the cache, after checking its hash against the registry.

    Returns one result per registry weight set it belongs to; raises when it matches none (or not `spec`).
    """
    path = Path(path)
    if not path.is_file():
        raise FetchError(f"no such file: {path}")
    sha = cache.hash_file(path)
    selections = matching_weights(sha, spec)
    if not selections:
        scope = f"the weights of {spec}" if spec else "any weight set in the registry"
        raise FetchError(
            f"{path} (sha256 {sha}) does not match {scope}; it was not imported (`zoo inspect {path}` shows what it is)"
        )
    results = []
    for selection in selections:
        wanted = wanted_for(selection.entry.qualified_name, selection.weights)
        dest = cache.file_path(wanted.key)
        with replacing(dest, root=cache.weights_dir()) as tmp:
            shutil.copyfile(path, tmp)
        size = dest.stat().st_size
        record = cache.CacheRecord(wanted.key, sha, size, wanted.url, f"import:{path}", wanted.name, wanted.tag)
        cache.write_record(record)
        results.append(FetchResult(wanted.name, wanted.tag, dest, sha, size, f"import:{path}"))
    return results
