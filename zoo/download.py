"""Stream one URL into a `.part` file: sha256 hashed in a second thread while the bytes arrive, resume
from where a previous attempt stopped, retries with backoff on transient failures, Content-Length checked.

hashlib releases the GIL on large buffers, so hashing one chunk overlaps receiving and writing the next:
on loopback, where hashing is the bottleneck, this roughly doubles the throughput of inline hashing.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.sources import OpenedSource, TransientError

CHUNK = 4 << 20
BUFFERS = 6
Progress = Callable[[int, int | None], None]  # (bytes so far, total or None)
NETWORK_ERRORS = (OSError, http.client.HTTPException)  # socket.timeout is an OSError


@dataclass(frozen=True)
class Downloaded:
    """A complete `.part` file: its sha256 and size, and whether an earlier partial download was resumed."""

    sha256: str
    size: int
    resumed_from: int


def retries() -> int:
    return int(os.environ.get("ZOO_FETCH_RETRIES", "5"))


def backoff() -> float:
    return float(os.environ.get("ZOO_FETCH_BACKOFF", "0.5"))


class _Hasher:
    """sha256 in a worker thread over a fixed pool of reusable buffers (no allocation per chunk)."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.free: queue.Queue[bytearray] = queue.Queue()
        for _ in range(BUFFERS):
            self.free.put(bytearray(CHUNK))
        self.pending: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="zoo-sha256", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.pending.get()) is not None:
            buffer, count = item
            try:
                self.hash.update(memoryview(buffer)[:count])
            except BaseException as exc:  # noqa: BLE001 - reported by digest()
                self.error = exc
            self.free.put(buffer)

    def update_from_file(self, path: Path) -> int:
        """Hash an existing partial file (the only re-read zoo ever does: bytes from an earlier attempt)."""
        size = 0
        with open(path, "rb") as stream:
            while True:
                buffer = self.free.get()
                count = stream.readinto(buffer)
                if not count:
                    self.free.put(buffer)
                    return size
                size += count
                self.pending.put((buffer, count))

    def digest(self) -> str:
        self.pending.put(None)
        self.thread.join()
        if self.error:
            raise self.error
        return self.hash.hexdigest()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.pending.put(None)


def download(
    open_source: Callable[[str, int], OpenedSource],
    url: str,
    part: Path,
    *,
    expected_size: int | None = None,
    progress: Progress | None = None,
    resume: bool = True,
) -> Downloaded:
    """Download `url` into `part` (resuming an existing `part` when `resume`), returning its sha256 and size.

    Raises FetchError at once for permanent failures, and after `ZOO_FETCH_RETRIES` attempts (backoff
    `ZOO_FETCH_BACKOFF` seconds, doubling) for transient ones. `part` is left in place for a later resume.
    """
    hasher = _Hasher()
    try:
        offset = hasher.update_from_file(part) if resume and part.exists() else 0
        resumed_from = offset
        if not offset:
            part.write_bytes(b"")
        attempt = 0
        while True:
            try:
                offset, total = _attempt(open_source, url, part, hasher, offset, expected_size, progress)
                if offset == 0 and resumed_from:
                    resumed_from = 0
                break
            except TransientError as exc:
                written = part.stat().st_size
                attempt = 1 if written > offset else attempt + 1  # progress made: the count starts again
                if attempt > retries():
                    raise TransientError(f"{exc} (gave up after {attempt} attempts in a row)") from None
                time.sleep(backoff() * 2 ** (attempt - 1))
                offset = written
                if hasher.error:
                    raise hasher.error from None
        return Downloaded(hasher.digest(), offset, resumed_from)
    finally:
        hasher.stop()


def _attempt(open_source, url, part, hasher, offset, expected_size, progress) -> tuple[int, int | None]:
    opened = open_source(url, offset)
    try:
        if offset and not opened.resumed:
            _restart(hasher, part)
            offset = 0
        total = opened.size if opened.size is not None else expected_size
        if total is not None and offset > total:  # a stale partial from a different file
            opened.close()
            _restart(hasher, part)
            return _attempt(open_source, url, part, hasher, 0, expected_size, progress)
        offset = _pump(opened, part, hasher, offset, total, progress, url)
    finally:
        opened.close()
    if total is not None and offset != total:
        raise TransientError(f"{url}: connection closed after {offset} of {total} bytes")
    return offset, total


def _restart(hasher: _Hasher, part: Path) -> None:
    _drain(hasher)
    hasher.hash = hashlib.sha256()
    part.write_bytes(b"")


def _drain(hasher: _Hasher) -> None:
    """Wait until every queued buffer is hashed (all buffers are back in the free pool)."""
    buffers = [hasher.free.get() for _ in range(BUFFERS)]
    for buffer in buffers:
        hasher.free.put(buffer)


def _pump(opened: OpenedSource, part: Path, hasher: _Hasher, offset: int, total, progress, url: str) -> int:
    stream = opened.stream
    readinto = getattr(stream, "readinto", None)
    with open(part, "r+b", buffering=0) as out:  # straight to the file: no copy through a Python buffer
        out.seek(offset)
        out.truncate()
        while True:
            buffer = hasher.free.get()
            try:
                if readinto is not None:
                    count = readinto(buffer)
                else:
                    data = stream.read(CHUNK)
                    count = len(data)
                    buffer[:count] = data
            except NETWORK_ERRORS as exc:
                hasher.free.put(buffer)
                out.flush()
                raise TransientError(f"{url}: {type(exc).__name__} after {offset} bytes: {exc}") from None
            except BaseException:
                hasher.free.put(buffer)
                raise
            if not count:
                hasher.free.put(buffer)
                return offset
            _write_all(out, memoryview(buffer)[:count])
            hasher.pending.put((buffer, count))
            offset += count
            if progress is not None:
                progress(offset, total)


def _write_all(out, view: memoryview) -> None:
    while view:
        view = view[out.write(view) :]
