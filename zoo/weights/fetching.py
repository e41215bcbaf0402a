"""Resolve -> download -> verify -> cache: the one way zoo gets a weights file onto the disk.

The verified file appears in the cache by an atomic rename, only after its sha256 (computed while
streaming) matches the registry's full hash, the Hugging Face hub's (`X-Linked-Etag`) or the file name's
hash prefix; a mismatch is kept aside as `<key>.bad`. A file lock per cache key makes concurrent
processes download a file once. The Hugging Face and torch hub caches are read before a download and
written after one (zoo.weights.hub_caches).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from zoo.files import replacing
from zoo.registry import catalogues
from zoo.registry.records import Selection, WeightSet, file_name_from_url, hash_prefix_from_file_name
from zoo.weights import cache, hub_caches
from zoo.weights.download import Progress, download
from zoo.weights.mirrors import candidate_urls, offline_requested
from zoo.weights.sources import FetchError, FileSource, HttpSource, OpenedSource, TransientError, scheme_of

LOCAL_SCHEMES = ("file",)
# What a file's sha256 was checked against (CacheRecord.verified, FetchResult.verified).
VERIFIED_BY = {
    "registry": "the registry's sha256",
    "hub": "the Hugging Face hub's sha256 (X-Linked-Etag)",
    "prefix": "the hash prefix in its file name",
    "given": "the sha256 given",
    "mirror": "the sha256 in the mirror's index.json (the hub's, when `zoo mirror sync` fetched it)",
    "": "nothing: no hash is known for it",
}


@dataclass(frozen=True)
class FetchResult:
    """A verified file in the cache and where it came from (a URL, "cache", "torch hub cache", "import")."""

    name: str | None
    tag: str | None
    path: Path
    sha256: str
    size: int
    source: str
    verified: str = ""  # a VERIFIED_BY key
    commit: str | None = None  # the Hugging Face commit, for a hub file
    shared: tuple[str, ...] = ()  # where else it was placed (the Hugging Face or torch hub cache)
    notes: tuple[str, ...] = ()  # what the user should know: no hash, not shared and why

    def to_dict(self) -> dict:
        return asdict(self) | {"path": str(self.path), "shared": list(self.shared), "notes": list(self.notes)}


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
    hash_from: str = ""  # a VERIFIED_BY key

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
    share: bool | None = None,
) -> FetchResult:
    """Fetch the weights `[family:]name[.tag]` (or a Selection) names into the cache; return the verified file.

    `share=False` (`--no-share`; default: the config file's `share`, true) keeps it out of the Hugging Face
    and torch hub caches."""
    selection = (
        catalogues.models().resolve(spec_or_selection) if isinstance(spec_or_selection, str) else spec_or_selection
    )
    weights = selection.weights
    if weights is None:
        raise FetchError(f"{selection.entry.qualified_name} has no pretrained weights in the registry")
    return _fetch(wanted_for(selection.entry.qualified_name, weights), mirrors, offline, force, progress, share)


def fetch_url(
    url: str,
    *,
    sha256: str | None = None,
    file_name: str | None = None,
    mirrors: tuple[str, ...] | list[str] = (),
    offline: bool | None = None,
    force: bool = False,
    progress: Progress | None = None,
    share: bool | None = None,
) -> FetchResult:
    """Fetch any URL into the cache, verified against `sha256`, else the hub's, else the file name's hash prefix.

    Shared into the Hugging Face / torch hub cache (unless `share=False`) when it is a hub file or a file the
    registry knows at that URL (a legacy torchvision file too): timm and torchvision look for no other."""
    if share is None and hub_caches.hub_file(url) is None and not _known_url(url):
        share = False
    name = file_name or file_name_from_url(url)
    prefix = hash_prefix_from_file_name(name)
    wanted = _Wanted(
        url,
        cache.cache_key(url, name),
        sha256.lower() if sha256 else None,
        prefix,
        hash_from="given" if sha256 else "prefix" if prefix else "",
    )
    return _fetch(wanted, mirrors, offline, force, progress, share)


def _known_url(url: str) -> bool:
    """Whether `url` is the file of a registry weight set (today's or a legacy one)."""
    selection = catalogues.models().find_file(file_name_from_url(url))
    return selection is not None and selection.weights is not None and selection.weights.url == url


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
        "registry" if weights.sha256 else "prefix" if weights.hash_prefix else "",
    )


def _fetch(wanted: _Wanted, mirrors, offline, force: bool, progress: Progress | None, share=None) -> FetchResult:
    dest = cache.file_path(wanted.key)
    share = hub_caches.sharing_enabled(share)
    if not force and (hit := _cached(wanted, dest)):
        return _shared(hit, wanted, share, only_missing=True)
    offline = offline_requested(offline) or hub_caches.hub_offline()
    urls = [hub_caches.endpoint_url(u) for u in candidate_urls(wanted.url, wanted.key, mirrors, wanted.mirrors)]
    if offline:
        urls = [u for u in urls if is_local(u)]
    refused: list[str] = []  # files in the shared caches whose content is not what their name claims
    if not force and (hit := _from_shared_caches(wanted, dest, refused)):
        return _shared(hit, wanted, share)
    if not urls:
        raise FetchError(
            f"offline and {wanted.key} is not in the cache ({dest}); copy the file there with "
            f"`zoo import FILE`, or set ZOO_MIRROR to a file:// mirror directory, or fetch it online"
            + "".join(f"; {note}" for note in refused)
        )
    from filelock import FileLock

    lock = cache.lock_path(wanted.key)
    lock.parent.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if not force and (hit := _cached(wanted, dest)):  # another process fetched it while we waited
            return _shared(hit, wanted, share, only_missing=True)
        done = _download_first(wanted, dest, urls, progress)
        fresh = done.source == hub_caches.endpoint_url(wanted.url)  # its commit is the hub's answer just now
        return _shared(replace(done, notes=(*done.notes, *refused)), wanted, share, fresh=fresh)


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
        verified = wanted.hash_from if wanted.expected else ""
        record = cache.CacheRecord(wanted.key, sha, size, wanted.url, "cache", wanted.name, wanted.tag, 0.0, verified)
        cache.write_record(record)
    elif wanted.expected and not record.sha256.startswith(wanted.expected):
        return None
    verified = record.verified or (wanted.hash_from if wanted.expected else "")
    return FetchResult(wanted.name, wanted.tag, dest, record.sha256, size, "cache", verified, record.commit or None)


def _from_shared_caches(wanted: _Wanted, dest: Path, refused: list[str]) -> FetchResult | None:
    """Reuse the file from the Hugging Face cache (a hub file) or `$TORCH_HOME/hub/checkpoints` (any other)
    when its sha256 matches what is expected (for a hub file, at least its blob name); no download."""
    hub = hub_caches.hub_file(wanted.url)
    if hub is not None:
        found = hub_caches.find_in_hub_cache(hub, wanted.expected)
    else:
        found = hub_caches.find_in_torch_hub(wanted.url, wanted.expected, refused)
    if found is None:
        return None
    cache.place_file(found.path, dest, root=cache.weights_dir())
    size = dest.stat().st_size
    verified = wanted.hash_from if wanted.expected else "hub"  # else: the blob's name, the hub's sha256
    record = cache.CacheRecord(
        wanted.key, found.sha256, size, wanted.url, str(found.path), wanted.name, wanted.tag, 0.0, verified
    )
    record.commit = found.commit or ""
    cache.write_record(record)
    return FetchResult(wanted.name, wanted.tag, dest, found.sha256, size, found.where, verified, found.commit)


def _shared(
    result: FetchResult, wanted: _Wanted, share: bool, only_missing: bool = False, fresh: bool = False
) -> FetchResult:
    """`result`, placed in the cache its library reads when `share`, with notes on what was not done."""
    notes = list(result.notes)
    if not result.verified:
        notes.append(f"{Path(wanted.key).name} was checked against nothing: no hash is known for it")
    placed = None
    if share:
        placed = hub_caches.share(result.path, wanted.url, result.sha256, result.commit, only_missing, fresh)
    shared = result.shared
    if placed is not None and placed.path is not None:
        shared = (*shared, str(placed.path))
    elif placed is not None and placed.note:
        notes.append(f"not placed in the {placed.where}: {placed.note}")
    return replace(result, shared=shared, notes=tuple(notes))


def _download_first(wanted: _Wanted, dest: Path, urls: list[str], progress: Progress | None) -> FetchResult:
    part = cache.part_path(wanted.key)
    failures = []
    started = time.monotonic()  # the file's deadline (zoo.weights.retrying) counts from here, across its URLs
    hub = hub_caches.hub_file(wanted.url)
    origin = hub_caches.endpoint_url(wanted.url)
    for url in urls:
        answers: list[hub_caches.HubAnswer] = []  # what the hub said on each open (origin URL only)
        opener = _hub_opener(url, answers) if hub is not None and url == origin else source_opener(url)
        try:
            done = download(opener, url, part, expected_size=wanted.size, progress=progress, started=started)
        except FetchError as exc:  # permanent (4xx), or transient retried until given up: try the next URL
            failures.append(f"{exc}{_gated_hint(hub, exc) if url == origin else ''}")
            if part.exists() and (not isinstance(exc, TransientError) or part.stat().st_size == 0):
                part.unlink()
            continue
        answer = answers[-1] if answers else hub_caches.HubAnswer()
        if hub is not None and url != origin and not answer.sha256:  # from a zoo mirror: what its index says
            answer = _mirror_answer(url, wanted.key)
        if not wanted.expected and answer.sha256:
            wanted = replace(wanted, sha256=answer.sha256, hash_from="hub" if url == origin else "mirror")
        if wanted.size is None and answer.size is not None:
            wanted = replace(wanted, size=answer.size)
        return _install(wanted, dest, part, done.sha256, done.size, url, answer.commit)
    if len(failures) == 1:  # one URL: its error says it all
        raise FetchError(failures[0])
    raise FetchError(f"could not fetch {Path(wanted.key).name}: {'; '.join(failures)}")


def _hub_opener(url: str, answers: list) -> Callable[[str, int], OpenedSource]:
    """The URL's opener, sending HF_TOKEN to the hub (only), noting the hub's answer on each open."""
    open_source = source_opener(url, hub_caches.auth_headers(url))

    def opened(u: str, offset: int) -> OpenedSource:
        result = open_source(u, offset)
        answers.append(hub_caches.hub_answer(result.headers))
        return result

    return opened


def _mirror_answer(url: str, key: str) -> hub_caches.HubAnswer:
    """The sha256 and hub commit that a zoo mirror's `index.json` gives for `key` (none if it gives none)."""
    if not url.endswith("/" + key):
        return hub_caches.HubAnswer()
    index_url = url[: -len(key)] + "index.json"
    try:
        opened = source_opener(index_url)(index_url, 0)
        try:
            files = json.loads(opened.stream.read(64 << 20))["files"]
        finally:
            opened.close()
        entry = next(f for f in files if isinstance(f, dict) and f.get("file") == key)
        headers = {"x-linked-etag": str(entry.get("sha256", "")), "x-repo-commit": str(entry.get("commit", ""))}
    except (FetchError, OSError, ValueError, LookupError, TypeError, StopIteration, RecursionError):
        return hub_caches.HubAnswer()
    return hub_caches.hub_answer(headers)


def _gated_hint(hub: hub_caches.HubFile | None, exc: FetchError) -> str:
    if hub is None or not any(f"HTTP {code}" in str(exc) for code in (401, 403)):
        return ""
    if hub_caches.hub_token():
        return f" (a Hugging Face token was sent: does its account have access to {hub.repo_id}?)"
    return f" ({hub.repo_id} may be gated or private: set HF_TOKEN, or `hf auth login`, with access to it)"


def _install(
    wanted: _Wanted, dest: Path, part: Path, sha: str, size: int, url: str, commit: str | None = None
) -> FetchResult:
    if wanted.expected and not sha.startswith(wanted.expected) or wanted.size not in (None, size):
        bad = cache.bad_path(wanted.key)
        os.replace(part, bad)
        if wanted.expected and not sha.startswith(wanted.expected):
            raise FetchError(_mismatch(wanted, wanted.expected, sha, bad, url))
        raise FetchError(f"{url}: got {size} bytes, the registry expects {wanted.size}; kept aside as {bad}")
    os.replace(part, dest)
    verified = wanted.hash_from if wanted.expected else ""
    record = cache.CacheRecord(wanted.key, sha, size, wanted.url, url, wanted.name, wanted.tag, 0.0, verified)
    record.commit = commit or ""
    cache.write_record(record)
    return FetchResult(wanted.name, wanted.tag, dest, sha, size, url, verified, commit)


def _mismatch(wanted: _Wanted, expected: str, actual: str, moved: Path, url: str | None = None) -> str:
    what = VERIFIED_BY[wanted.hash_from] if wanted.hash_from else "the hash prefix in its file name"
    origin = f" from {url}" if url else ""
    return (
        f"{wanted.key}{origin} failed verification: expected sha256 {expected} ({what}), got {actual}; "
        f"the file was kept aside as {moved} and not placed in the cache"
    )


def is_local(url: str) -> bool:
    """Whether reading `url` needs no network: `file`, or a weight source that declares `local = True`."""
    scheme = scheme_of(url)
    return scheme in LOCAL_SCHEMES or bool(getattr(catalogues.weight_sources().get(scheme), "local", False))


def source_opener(url: str, headers: dict[str, str] | None = None) -> Callable[[str, int], OpenedSource]:
    """`open(url, offset)` of the weight source registered for the URL's scheme (`headers` for http only)."""
    scheme = scheme_of(url)
    source = catalogues.weight_sources().get(scheme)
    if source is None:
        source = {"http": HttpSource, "https": HttpSource, "file": FileSource}.get(scheme, lambda: None)()
    if source is None:
        known = ", ".join(catalogues.weight_sources().names()) or "http, https, file"
        raise FetchError(f"no weight source for URL scheme {scheme!r} in {url} (known: {known}); install its plugin")
    if headers and isinstance(source, HttpSource):
        return lambda u, offset: source.open(u, offset=offset, headers=headers)
    return lambda u, offset: source.open(u, offset=offset)


def matching_weights(sha256: str, spec: str | None = None) -> list[Selection]:
    """Registry weight sets (or legacy files of one) whose full hash, or file-name hash prefix, matches `sha256`."""
    found = catalogues.models().find_by_hash(sha256)
    if spec is not None:
        entry = catalogues.models().resolve(spec).entry
        found = [selection for selection in found if selection.entry is entry]
    return found


def import_file(path: str | Path, spec: str | None = None) -> list[FetchResult]:
    """Copy a weights file someone already has into the cache, after checking its hash against the registry.

    Returns one result per registry weight set it belongs to; raises when it matches none (or not `spec`).
    """
    from zoo.weights.loading import check_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FetchError(f"no such file: {path}")
    sha = cache.hash_file(path)
    catalogues.models().check_file(path.name, sha)  # `resnet18-5c106cde.pth` with other content: refused
    selections = matching_weights(sha, spec)
    if not selections:
        check_checkpoint(path)  # a damaged or hostile file is named as such (exit code 6), not only as unknown
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
