"""The caches timm and torchvision read, shared both ways: the Hugging Face hub cache and torch's checkpoints.

Reading: a file zoo wants that huggingface_hub (for timm) or torch.hub (for torchvision) has already
downloaded is reused, after its sha256 is checked. Writing ("sharing"): a file zoo has verified is also
placed where they look, as a hard link (a copy across file systems), never downloaded twice, so that an
unchanged `timm.create_model(name, pretrained=True)` under HF_HUB_OFFLINE=1, or
`torchvision.models.resnet50(weights="DEFAULT")`, finds it. `--no-share` or `share = false` in the config
file turns writing off.

The Hugging Face layout is huggingface_hub's (under HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub): `models--ORG--NAME/blobs/<sha256>`, `snapshots/<commit>/<file>` as a relative
symlink to `../../blobs/<sha256>`, and `refs/<revision>` holding the commit. zoo reads it through
huggingface_hub's own `try_to_load_from_cache` (the lookup timm's offline load makes); it writes it itself,
since huggingface_hub has no call that adds a file it did not download, under huggingface_hub's own lock
for the blob. The environment is read at each call (huggingface_hub.constants freezes it at import).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from zoo.files import replacing, write_text_atomic
from zoo.paths import inside, safe_component, safe_relative
from zoo.registry.records import file_name_from_url

DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub.constants.ENV_VARS_TRUE_VALUES
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_RESOLVE = re.compile(r"(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/([^/]+)/(.+)")
HF_CACHE = "Hugging Face cache"
TORCH_CACHE = "torch hub cache"


def hub_endpoint() -> str:
    """HF_ENDPOINT (a hub mirror) or https://huggingface.co, without a trailing slash."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to 1/ON/YES/TRUE, as huggingface_hub reads it."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in _TRUE


def hub_home() -> str:
    """HF_HOME, else $XDG_CACHE_HOME/huggingface (~/.cache/huggingface), as huggingface_hub.constants reads it."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return os.path.expandvars(os.path.expanduser(home))


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps its cache: HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME."""
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or os.path.join(hub_home(), "hub")
    return Path(os.path.expandvars(os.path.expanduser(hub)))


def torch_hub_dir() -> Path:
    """torch's checkpoint cache: `$TORCH_HOME/hub/checkpoints` (TORCH_HOME defaults to $XDG_CACHE_HOME/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repository at a revision, as a resolve URL names it."""

    repo_type: str  # "model", "dataset" or "space"
    repo_id: str  # "timm/resnet50.a1_in1k"
    revision: str  # "main", a tag, or a 40-hex commit
    filename: str  # path inside the repository, `/`-separated

    @property
    def folder(self) -> str:
        """huggingface_hub's `repo_folder_name`: `models--timm--resnet50.a1_in1k`."""
        return "--".join((f"{self.repo_type}s", *self.repo_id.split("/")))


def hub_file(url: str) -> HubFile | None:
    """The repository, revision and file of a `<hub>/<org>/<name>/resolve/<revision>/<file>` URL, on
    huggingface.co or HF_ENDPOINT; None for any other URL. Every part must be a safe name."""
    for base in dict.fromkeys((DEFAULT_ENDPOINT, hub_endpoint())):
        if url.startswith(base + "/"):
            match = _RESOLVE.fullmatch(urlsplit(url[len(base) + 1 :]).path)
            if match is None:
                return None
            kind, org, name, revision, filename = (unquote(part) if part else part for part in match.groups())
            what = f"in the Hugging Face URL {url}"
            repo_id = f"{safe_component(org, f'organisation {what}')}/{safe_component(name, f'repository {what}')}"
            return HubFile(
                (kind or "models")[:-1],
                repo_id,
                safe_relative(revision, f"revision {what}"),
                safe_relative(filename, f"file {what}"),
            )
    return None


def endpoint_url(url: str) -> str:
    """`url` with https://huggingface.co replaced by HF_ENDPOINT when that is set; other URLs unchanged."""
    endpoint = hub_endpoint()
    if endpoint != DEFAULT_ENDPOINT and url.startswith(DEFAULT_ENDPOINT + "/"):
        return endpoint + url[len(DEFAULT_ENDPOINT) :]
    return url


def auth_headers(url: str) -> dict[str, str]:
    """`Authorization: Bearer $HF_TOKEN` for a URL on the hub endpoint (gated repositories); {} otherwise.

    The caller sends it to that URL only: never to a host it is redirected to, nor to a zoo mirror."""
    token = hub_token()
    if not token or not _same_origin(url, hub_endpoint()):
        return {}
    return {"Authorization": f"Bearer {token}"}


def hub_token() -> str | None:
    """The token huggingface_hub would send: HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), else the file `hf auth login`
    writes (HF_TOKEN_PATH, default $HF_HOME/token); none when HF_HUB_DISABLE_IMPLICIT_TOKEN is set."""
    if (os.environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN") or "").upper() in _TRUE:
        return None
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token is None:
        path = os.environ.get("HF_TOKEN_PATH") or os.path.join(hub_home(), "token")
        try:
            token = Path(os.path.expandvars(os.path.expanduser(path))).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
    return token.replace("\r", "").replace("\n", "").strip() or None


def _same_origin(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme.lower(), a.hostname, a.port) == (b.scheme.lower(), b.hostname, b.port)


@dataclass(frozen=True)
class HubAnswer:
    """What the hub's resolve response says of a file: its sha256 (LFS files), the commit, the size."""

    sha256: str | None = None
    commit: str | None = None
    size: int | None = None


def hub_answer(headers: Mapping[str, str]) -> HubAnswer:
    """Read `X-Linked-Etag` (an LFS file's sha256), `X-Repo-Commit` and `X-Linked-Size` (lower-case keys).

    Like huggingface_hub's `get_hf_file_metadata`, the etag loses a `W/` prefix and its quotes; a value
    that is not 64 hex digits (a small file's git sha1) is no sha256, and the answer then has none."""
    etag = (headers.get("x-linked-etag") or "").removeprefix("W/").strip('"').lower()
    commit = (headers.get("x-repo-commit") or "").strip().lower()
    size = (headers.get("x-linked-size") or "").strip()
    return HubAnswer(
        etag if _SHA256.fullmatch(etag) else None,
        commit if _COMMIT.fullmatch(commit) else None,
        int(size) if size.isdigit() else None,
    )


@dataclass(frozen=True)
class Found:
    """A file found in a shared cache, with its checked sha256 (and the hub commit it belongs to)."""

    path: Path
    sha256: str
    where: str
    commit: str | None = None


def find_in_hub_cache(hub: HubFile, expected: str | None) -> Found | None:
    """The file in the Hugging Face cache (the revision's snapshot, else the blob named `expected`) whose
    sha256 matches `expected`, or its blob name when nothing else is expected; None if there is none."""
    try:
        return _find_in_hub_cache(hub, expected)
    except OSError:  # a cache zoo cannot read is one it cannot reuse from
        return None


def _find_in_hub_cache(hub: HubFile, expected: str | None) -> Found | None:
    root = hub_cache_dir()
    repo = root / hub.folder
    if not repo.is_dir():
        return None
    from huggingface_hub import try_to_load_from_cache  # 0.1 s to import: only when the repository is there

    from zoo.weights.cache import hash_file

    candidates: list[tuple[Path, str | None]] = []
    found = try_to_load_from_cache(
        hub.repo_id, hub.filename, cache_dir=root, revision=hub.revision, repo_type=hub.repo_type
    )
    if isinstance(found, str):
        candidates.append((Path(found), Path(found).relative_to(repo / "snapshots").parts[0]))
    if expected and _SHA256.fullmatch(expected):
        candidates.append((repo / "blobs" / expected, read_ref(hub)))
    for path, commit in candidates:
        claimed = expected or _blob_sha256(path)
        if claimed and path.is_file() and (sha := hash_file(path)).startswith(claimed):
            return Found(path, sha, HF_CACHE, commit)
    return None


def _blob_sha256(path: Path) -> str | None:
    name = Path(os.path.realpath(path)).name
    return name if _SHA256.fullmatch(name) else None


def read_ref(hub: HubFile) -> str | None:
    """The commit `refs/<revision>` names in the Hugging Face cache (the revision itself when it is one)."""
    if _COMMIT.fullmatch(hub.revision):
        return hub.revision
    try:
        commit = (hub_cache_dir() / hub.folder / "refs" / hub.revision).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return commit if _COMMIT.fullmatch(commit) else None


def find_in_torch_hub(url: str, expected: str | None, refused: list[str] | None = None) -> Found | None:
    """`$TORCH_HOME/hub/checkpoints/<the URL's file name>` when its sha256 matches `expected` (else None).

    A file there that does not match is named in `refused`: by the registry when its name claims a weight
    set (a legacy torchvision file included: both hashes), else with the two hashes."""
    from zoo.weights.cache import hash_file

    candidate = torch_hub_dir() / file_name_from_url(url)
    try:
        if not expected or not candidate.is_file():
            return None
        sha = hash_file(candidate)
    except OSError:  # unreadable: not reused
        return None
    if sha.startswith(expected):
        return Found(candidate, sha, TORCH_CACHE)
    if refused is not None:
        refused.append(f"{candidate} not reused: {_misnamed(candidate.name, sha, expected)}")
    return None


def _misnamed(name: str, sha256: str, expected: str) -> str:
    from zoo.registry import catalogues
    from zoo.registry.model_registry import MisnamedFileError

    try:
        catalogues.models().check_file(name, sha256)
    except MisnamedFileError as exc:
        return str(exc)
    return f"its sha256 is {sha256}, not the expected {expected}"


@dataclass(frozen=True)
class Placed:
    """Where a verified file was placed for another library, or why it was not (`note`)."""

    where: str
    path: Path | None
    note: str = ""


def share(
    source: Path, url: str, sha256: str, commit: str | None, only_missing: bool = False, fresh: bool = False
) -> Placed | None:
    """Place the verified `source` (fetched for `url`) where its library looks: a hub file into the Hugging
    Face cache, any other http(s) file into torch's checkpoints under the URL's file name. None: no such
    place (or, with `only_missing`, something is there already: a cache hit does not re-check it).
    A cache zoo cannot write (read-only, a file in the way) gives a note, never a failed fetch. `fresh`: the
    commit is the hub's answer just now, which may move `refs/<revision>` (else only a missing ref is written)."""
    hub = hub_file(url)
    if hub is not None:
        commit = commit or read_ref(hub)
        pointer = hub_cache_dir() / hub.folder / "snapshots" / (commit or "-") / hub.filename
        if only_missing and commit and os.path.exists(pointer):
            return None
        where, place = HF_CACHE, lambda: place_in_hub_cache(source, hub, sha256, commit, fresh)
    elif urlsplit(url).scheme.lower() in ("http", "https"):
        if only_missing and os.path.exists(torch_hub_dir() / file_name_from_url(url)):
            return None
        where, place = TORCH_CACHE, lambda: place_in_torch_hub(source, url, sha256)
    else:
        return None
    try:
        return place()
    except OSError as exc:
        return Placed(where, None, f"cannot write there ({type(exc).__name__}: {exc})")


def place_in_hub_cache(source: Path, hub: HubFile, sha256: str, commit: str | None, fresh: bool = True) -> Placed:
    """Write blob, snapshot symlink and ref as huggingface_hub does; leave a different file there alone.

    `refs/<revision>` is written when missing, or moved to `commit` when `fresh` (the hub's answer just now,
    as huggingface_hub moves it); a commit from zoo's records or a mirror never moves a ref back."""
    root = hub_cache_dir()
    repo = root / hub.folder
    commit = hub.revision if _COMMIT.fullmatch(hub.revision) else commit or read_ref(hub)  # a URL's commit rules
    if commit is None:
        return Placed(HF_CACHE, None, f"the commit of {hub.repo_id}@{hub.revision} is unknown (not from the hub)")
    blob = inside(root, repo / "blobs" / sha256)
    pointer = inside(root, repo / "snapshots" / commit / hub.filename)
    from filelock import FileLock

    lock = inside(root, root / ".locks" / hub.folder / f"{sha256}.lock")  # huggingface_hub's lock for this blob
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if not _same_file(blob, source, sha256):
            _link_or_copy(source, blob, root)
        if os.path.exists(pointer) and not _same_file(pointer, blob, sha256):
            return Placed(HF_CACHE, None, f"a different file is already at {pointer}")
        if not os.path.exists(pointer):  # absent, or a dangling link: replaced
            _symlink(blob, pointer, root)
    if hub.revision != commit:
        ref = inside(root, repo / "refs" / hub.revision)
        current = read_ref(hub)
        if current is None or (fresh and current != commit):
            write_text_atomic(ref, commit, root=root)
    return Placed(HF_CACHE, pointer)


def place_in_torch_hub(source: Path, url: str, sha256: str) -> Placed:
    """`$TORCH_HOME/hub/checkpoints/<file name>`, unless a different file is there already."""
    root = torch_hub_dir()
    dest = inside(root.parent.parent, root / file_name_from_url(url))
    if os.path.exists(dest):
        if not _same_file(dest, source, sha256):
            return Placed(TORCH_CACHE, None, f"a different file is already at {dest}")
        return Placed(TORCH_CACHE, dest)
    _link_or_copy(source, dest, root.parent.parent)
    return Placed(TORCH_CACHE, dest)


def _same_file(path: Path, source: Path, sha256: str) -> bool:
    """Whether `path` holds the bytes of `source` (whose sha256 is known): the same inode, or hashed once."""
    from zoo.weights.cache import hash_file

    if not path.is_file():
        return False
    if os.path.samefile(path, source):
        return True
    return path.stat().st_size == source.stat().st_size and hash_file(path) == sha256


def _link_or_copy(source: Path, dest: Path, root: Path) -> None:
    from zoo.weights.cache import place_file

    place_file(source, dest, root=root)


def _symlink(blob: Path, pointer: Path, root: Path) -> None:
    """A relative symlink `pointer` -> `blob` renamed into place (a link or copy where symlinks fail)."""
    with replacing(pointer, root=root) as tmp:
        tmp.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), tmp)
        except OSError:  # no symlinks here: huggingface_hub then keeps a copy in the snapshot too
            try:
                os.link(blob, tmp)
            except OSError:
                shutil.copyfile(blob, tmp)


def hash_check(weights) -> str:
    """How a weight set's file is checked (`zoo info`): the registry's sha256 or prefix, else, for a hub
    file, the hub's sha256 (as recorded once fetched), else nothing."""
    if weights.sha256:
        return f"sha256 {weights.sha256}"
    if weights.hash_prefix:
        return f"sha256 prefix {weights.hash_prefix}"
    from zoo.errors import UnsafeNameError
    from zoo.weights.cache import cache_key, read_record

    try:
        if hub_file(weights.url) is None:
            return "no hash"
        record = read_record(cache_key(weights.url, weights.file_name))
    except UnsafeNameError:
        return "no hash"
    if record is not None and record.sha256 and record.verified in ("hub", "mirror"):
        return f"sha256 {record.sha256}, the Hugging Face hub's"
    return "sha256 from the Hugging Face hub when fetched"


def sharing_enabled(share: bool | None = None) -> bool:
    """`share` when given (False for `--no-share`), else the config file's `share` (default true)."""
    if share is not None:
        return share
    from zoo.errors import UserInputError
    from zoo.weights.mirrors import config_path, read_config

    value = read_config().get("share", True)
    if not isinstance(value, bool):
        raise UserInputError(f"{config_path()}: 'share' must be true or false, got {value!r}")
    return value
