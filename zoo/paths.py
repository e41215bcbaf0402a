"""The one way a name from outside becomes part of a path, and the check that a path stays inside its root.

Every name zoo did not make itself (a URL's last path component, a registry `file_name`, a mirror's index
entry, a model name or tag used as an output file name, anything a plugin returns) goes through
`safe_component` before it is joined to a directory; every path zoo writes goes through `inside` before
it is opened.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from zoo.errors import UnsafeNameError

MAX_NAME_BYTES = 255  # the longest file name ext4, APFS, NTFS (in UTF-16 units) and others accept
_DRIVE = re.compile(r"[A-Za-z]:")
_SEPARATORS = ("/", "\\")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc: C0, DEL and C1
_ADVICE = "zoo writes only plain file names inside its folders (like model-0123abcd.pth)"


def safe_component(name: str, what: str = "file name") -> str:
    """`name`, unchanged, when it is one plain path component; else raise UnsafeNameError saying why.

    Decode percent-escapes before calling (`urllib.parse.unquote`, as zoo does for a URL's last path
    component): the check covers the name as given and every further decoding of it, so a double-encoded
    `%252e%252e%252f` is refused too and no later decoding can turn an accepted name into a path.
    Refused: a non-string, empty, `.`, `..` (or any name of only dots and spaces), `/` or `\\`, NUL and
    other control characters, absolute paths, drive letters (`C:`), and names over 255 bytes of UTF-8.
    `what` says what the name is (`"file name of URL ..."`) in the error.
    """
    what = what if what.isprintable() else repr(what)  # a URL with a newline in it: the message stays one line
    if not isinstance(name, str):
        raise UnsafeNameError(f"{what}: must be a string, got {type(name).__name__} {name!r}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeNameError(f"{what}: {name!r} is not valid Unicode (a lone surrogate); {_ADVICE}") from None
    if size > MAX_NAME_BYTES:
        raise UnsafeNameError(
            f"{what}: {name[:40]!r}... is {size} bytes of UTF-8, over the {MAX_NAME_BYTES} a file name may have; "
            "use a shorter name"
        )
    form = name
    while True:
        problem = _problem(form)
        if problem:
            decoded = "" if form == name else f" (decoded from {name!r})"
            raise UnsafeNameError(f"{what}: {form!r}{decoded} {problem}; {_ADVICE}")
        decoded_form = unquote(form)
        if decoded_form == form:
            return name
        form = decoded_form  # each decoding is shorter, so this ends


def _problem(name: str) -> str | None:
    """What makes `name` unsafe as a path component (None when nothing does)."""
    if not name:
        return "is empty"
    if name.startswith(_SEPARATORS):
        return "is an absolute path"
    if _DRIVE.match(name):
        return "starts with a drive letter"
    for form in (name,) if name.isascii() else dict.fromkeys((name, unicodedata.normalize("NFKC", name))):
        normalised = " once Unicode-normalised" if form != name else ""
        for separator in _SEPARATORS:
            if separator in form:
                return f"contains {separator!r}{normalised}"
        if not form.strip(". "):
            return f"is only dots and spaces{normalised} ('.' and '..' name folders)"
    bad = _CONTROL.search(name)
    if bad is not None:
        return "contains NUL" if bad.group() == "\0" else f"contains the control character {bad.group()!r}"
    return None


def safe_relative(key: str, what: str = "path") -> str:
    """A relative path of `/`-separated components (a cache key, a mirror index entry), each one safe."""
    if not isinstance(key, str):
        raise UnsafeNameError(f"{what}: must be a string, got {type(key).__name__} {key!r}")
    for part in key.split("/"):
        safe_component(part, f"{what} {key!r}, component")
    return key


def inside(root: str | Path, path: str | Path) -> Path:
    """`path`, once it is checked to resolve inside `root` (symlinks followed); else raise UnsafeNameError.

    The second line of defence, called on every path zoo writes under one of its roots (the cache, a
    mirror directory, the `-o` directory of `zoo convert`) before it is opened.
    """
    path = Path(path)
    try:
        resolved_root, resolved = Path(root).resolve(), path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise UnsafeNameError(f"refusing to write {path}: it cannot be resolved ({exc})") from None
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise UnsafeNameError(
            f"refusing to write {path}: it resolves to {resolved}, outside {resolved_root}, where it belongs; "
            "remove the link that leads there or choose another directory"
        )
    return path
