"""Where zoo keeps downloaded weights (ZOO_HOME, or the platform's cache directory), and what it knows of them.

Layout under `weights_dir()`: verified files at their cache key (the file name when it carries a hash
prefix, like torchvision's `resnet18-f37072fd.pth`; else `<url hash>/<file name>`, so timm's many
`model.safetensors` never collide), `.meta/<key>.json` with the sha256, size and origin of each,
`.locks/` for the per-file locks, `<key>.part` while downloading and `<key>.bad` for quarantined files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from zoo.files import replacing, write_text_atomic, zoo_home
from zoo.paths import inside, safe_component
from zoo.registry.records import WeightSet, file_name_from_url, hash_prefix_from_file_name

META_DIR = ".meta"
LOCK_DIR = ".locks"


def weights_dir() -> Path:
    return zoo_home() / "weights"


def torch_hub_dir() -> Path:
    """torch's checkpoint cache (zoo.weights.hub_caches, which reads and writes it, defines it)."""
    from zoo.weights.hub_caches import torch_hub_dir

    return torch_hub_dir()


def cache_key(url: str, file_name: str | None = None) -> str:
    """The path of a file inside the cache (and inside a mirror directory), relative and with `/`.

    The file name (given, or the URL's last path component) must pass zoo.paths.safe_component.
    """
    name = safe_component(file_name, f"file name of {url}") if file_name else file_name_from_url(url)
    if hash_prefix_from_file_name(name):
        return name
    return f"{hashlib.sha256(url.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}/{name}"


def file_path(key: str, suffix: str = "", folder: str = "") -> Path:
    """`<cache>/[folder/]<key><suffix>`, checked to stay inside the cache (or `folder`) before anyone writes it."""
    root = weights_dir() / folder if folder else weights_dir()
    return inside(root, root / f"{key}{suffix}")


def cached_path(weights: WeightSet) -> Path:
    """Where a weight set's verified file lives in the cache (whether or not it is there yet)."""
    return file_path(cache_key(weights.url, weights.file_name))


def is_cached(weights: WeightSet) -> bool:
    return cached_path(weights).is_file()


@dataclass
class CacheRecord:
    """What zoo recorded about a cached file when it verified it."""

    key: str
    sha256: str
    size: int
    url: str = ""
    source: str = ""
    name: str | None = None
    tag: str | None = None
    fetched_at: float = 0.0
    verified: str = ""  # what the sha256 was checked against (fetching.VERIFIED_BY); "" for nothing
    commit: str = ""  # the Hugging Face commit the file belongs to, when it came from the hub

    @property
    def path(self) -> Path:
        return file_path(self.key)


def meta_path(key: str) -> Path:
    return file_path(key, ".json", META_DIR)


def write_record(record: CacheRecord) -> None:
    """Save the record next to the cache, atomically."""
    record.fetched_at = record.fetched_at or time.time()
    write_text_atomic(meta_path(record.key), json.dumps(asdict(record), indent=1))


def read_record(key: str) -> CacheRecord | None:
    try:
        data = json.loads(meta_path(key).read_text(encoding="utf-8"))
        return CacheRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def lock_path(key: str) -> Path:
    return file_path(key.replace("/", "__"), ".lock", LOCK_DIR)


def part_path(key: str) -> Path:
    return file_path(key, ".part")


def bad_path(key: str) -> Path:
    return file_path(key, ".bad")


def _is_cache_file(path: Path, root: Path) -> bool:
    relative = path.relative_to(root).as_posix()
    return not relative.startswith((META_DIR + "/", LOCK_DIR + "/")) and not path.name.endswith(
        (".part", ".bad", ".tmp")
    )


def cached_files() -> list[Path]:
    """Every verified file in the cache (not partial, quarantined or bookkeeping files)."""
    root = weights_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and _is_cache_file(p, root))


def list_cache() -> list[CacheRecord]:
    """A record for every cached file (one is made up from the file itself when zoo recorded none)."""
    root = weights_dir()
    records = []
    for path in cached_files():
        key = path.relative_to(root).as_posix()
        record = read_record(key) or CacheRecord(key, "", path.stat().st_size, source="unknown")
        records.append(record)
    return records


def hash_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while data := stream.read(chunk):
            digest.update(data)
    return digest.hexdigest()


@dataclass(frozen=True)
class Verification:
    key: str
    status: str  # "ok", "bad" (quarantined), "unrecorded" (no hash to check against; now recorded)
    expected: str | None
    actual: str
    moved_to: Path | None = None


def verify_cache() -> list[Verification]:
    """Re-hash every cached file against its record (or its file name's hash prefix); quarantine mismatches."""
    results = []
    for record in list_cache():
        actual = hash_file(record.path)
        expected = record.sha256 or hash_prefix_from_file_name(Path(record.key).name)
        if expected is None:
            record.sha256 = actual
            write_record(record)
            results.append(Verification(record.key, "unrecorded", None, actual))
        elif actual.startswith(expected) and (record.size in (0, record.path.stat().st_size) or not record.sha256):
            results.append(Verification(record.key, "ok", expected, actual))
        else:
            results.append(Verification(record.key, "bad", expected, actual, quarantine(record.key)))
    return results


def quarantine(key: str) -> Path:
    """Move a cached file aside as `<key>.bad` (never deleted silently) and forget its record."""
    target = bad_path(key)
    os.replace(file_path(key), target)
    meta_path(key).unlink(missing_ok=True)
    return target


def remove(key: str) -> bool:
    """Delete a cached file and its record; False when it was not there."""
    path = file_path(key)
    existed = path.is_file()
    path.unlink(missing_ok=True)
    meta_path(key).unlink(missing_ok=True)
    return existed


def prune(older_than_s: float = 0.0, dry_run: bool = False) -> list[Path]:
    """Remove quarantined `.bad` files, stale `.part`/`.tmp` files, orphaned records and empty folders."""
    root = weights_dir()
    if not root.is_dir():
        return []
    now = time.time()
    doomed = [
        p
        for p in root.rglob("*")
        if p.is_file() and p.name.endswith((".bad", ".part", ".tmp")) and now - p.stat().st_mtime >= older_than_s
    ]
    meta_root = root / META_DIR
    if meta_root.is_dir():
        for meta in meta_root.rglob("*.json"):
            key = meta.relative_to(meta_root).as_posix()[: -len(".json")]
            if not (root / key).is_file():
                doomed.append(meta)
    doomed = [p for p in doomed if not (p.name.endswith(".part") and _in_use(p.relative_to(root).as_posix()[:-5]))]
    if not dry_run:
        for path in doomed:
            path.unlink(missing_ok=True)
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if folder.name != LOCK_DIR and not any(folder.iterdir()):
                folder.rmdir()
    return doomed


def _in_use(key: str) -> bool:
    """Whether a download of `key` is running now (another process holds its lock)."""
    from filelock import FileLock, Timeout

    path = lock_path(key)
    if not path.exists():
        return False
    try:
        with FileLock(str(path), timeout=0):
            return False
    except Timeout:
        return True


def place_file(source: Path, dest: Path, root: Path | None = None) -> None:
    """Put `source` at `dest` (inside `root` when given) atomically: a hard link where possible, else a copy."""
    with replacing(dest, root=root) as tmp:
        tmp.unlink()  # os.link wants the name free
        try:
            os.link(os.path.realpath(source), tmp)  # Linux's link() would link a symlink itself
        except OSError:
            shutil.copyfile(source, tmp)
