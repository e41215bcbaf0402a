"""`zoo mirror sync`: fetch a set of weights into a directory laid out as a mirror, with an index.

The directory holds each file at its cache key (`resnet18-f37072fd.pth`, or `<url hash>/model.safetensors`),
`index.json` (name, tag, file, sha256, size, origin URL of each) and `SHA256SUMS`; any web server hosting
it is a mirror for `--mirror`/ZOO_MIRROR, and `file:///path/to/dir` works offline.
"""

from __future__ import annotations

import json
from pathlib import Path

from zoo.errors import UnknownModelError, UnsafeNameError, UserInputError
from zoo.files import write_text_atomic
from zoo.paths import safe_relative
from zoo.registry import catalogues
from zoo.registry.records import Selection
from zoo.weights import cache
from zoo.weights.download import Progress
from zoo.weights.fetching import FetchResult, fetch

INDEX = "index.json"


def selections_for(patterns: list[str], all_tags: bool = False) -> list[Selection]:
    """The weight sets `patterns` name: fnmatch patterns over model names, or exact `name.tag` specs."""
    registry = catalogues.models()
    found: list[Selection] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?["):
            entries = registry.select([pattern], pretrained=True)
            if not entries:
                raise UnknownModelError(f"no model with weights matches {pattern!r} (see `zoo list --pretrained`)")
            for entry in entries:
                weights = entry.weights if all_tags else entry.weights[:1]
                found.extend(Selection(entry, w) for w in weights)
        else:
            selection = registry.resolve(pattern)
            if all_tags and "." not in pattern.rpartition(":")[2]:
                found.extend(Selection(selection.entry, w) for w in selection.entry.weights)
            else:
                found.append(selection)
    unique = {(s.entry.qualified_name, s.weights.tag if s.weights else None): s for s in found}
    return list(unique.values())


def sync(
    patterns: list[str],
    target: Path,
    *,
    all_tags: bool = False,
    mirrors=(),
    offline: bool | None = None,
    progress_for=None,
) -> list[FetchResult]:
    """Fetch (verified, through the cache) everything `patterns` name and place it in `target` with an index."""
    from zoo.weights.cache import cache_key

    target.mkdir(parents=True, exist_ok=True)
    index_path = target / INDEX
    index = read_index(index_path)
    results = []
    for selection in selections_for(patterns, all_tags):
        if selection.weights is None:
            continue
        progress: Progress | None = progress_for(selection.name) if progress_for else None
        result = fetch(selection, mirrors=mirrors, offline=offline, progress=progress)
        key = cache_key(selection.weights.url, selection.weights.file_name)
        cache.place_file(result.path, target / key, root=target)
        index[key] = {
            "name": selection.entry.qualified_name,
            "tag": selection.weights.tag,
            "file": key,
            "sha256": result.sha256,
            "size": result.size,
            "url": selection.weights.url,
        }
        if result.commit:  # a Hugging Face file's commit: a fetch through this mirror lays out the hub cache
            index[key]["commit"] = result.commit
        results.append(result)
    write_text_atomic(
        index_path,
        json.dumps({"format": 1, "files": sorted(index.values(), key=lambda i: i["file"])}, indent=1),
        root=target,
    )
    sums = "".join(f"{i['sha256']}  {k}\n" for k, i in sorted(index.items()))
    write_text_atomic(target / "SHA256SUMS", sums, root=target)
    return results


def read_index(path: Path) -> dict[str, dict]:
    """A mirror's index.json as {file: entry} ({} when absent); each entry's file checked by safe_relative."""
    if not path.is_file():
        return {}
    fix = f"fix or remove {path} and run `zoo mirror sync` again"
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UserInputError(f"{path}: not a zoo mirror index ({type(exc).__name__}: {exc}); {fix}") from None
    if not isinstance(files, list):
        raise UserInputError(f"{path}: 'files' must be a list, got {type(files).__name__}; {fix}")
    index = {}
    for item in files:
        if not isinstance(item, dict) or not _is_sha256(item.get("sha256")):
            raise UserInputError(f"{path}: an entry of 'files' has no 64-hex-digit sha256: {item!r}; {fix}")
        try:
            index[safe_relative(item.get("file"), "its file")] = item
        except UnsafeNameError as exc:
            raise UserInputError(f"{path}: {exc}; {fix}") from None
    return index


def _is_sha256(value: object) -> bool:
    return isinstance(value, str) and len(value) == 64 and not set(value) - set("0123456789abcdef")
