"""Stream one URL into a `.part` file, sha256 computed on the way, resume from where a previous attempt
stopped, retries with backoff on transient failures, Content-Length checked.

Each chunk goes from the socket (main thread) to the file (a writer thread) to sha256 (a hasher thread)
and back to a small pool of buffers. File writes and hashlib release the GIL on large buffers, so
receiving chunk i+1, writing chunk i and hashing chunk i-1 run at the same time: a download takes about
as long as the slowest of the three, where hashing inline would add them up.
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

from zoo.weights.sources import OpenedSource, TransientError

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


class _Pipeline:
    """Buffers flow: receive (caller) -> `write` -> writer thread -> hasher thread -> free pool.

    At most BUFFERS chunks are in flight, allocated as needed (a small file needs one). A failure in
    either thread is raised by the next `take()`; the threads keep returning buffers so nothing blocks.
    """

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.out = None  # the open `.part` file while a response is pumped into it
        self.error: BaseException | None = None
        self.allocated = 0
        self.free: queue.Queue[bytearray] = queue.Queue()
        self.to_write: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.to_hash: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
        self.threads = [
            threading.Thread(target=self._writer, name="zoo-write", daemon=True),
            threading.Thread(target=self._hasher, name="zoo-sha256", daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    def take(self) -> bytearray:
        """A free buffer, once the threads have caught up enough to release one."""
        if self.error is not None:
            raise self.error
        if self.allocated < BUFFERS and self.free.empty():
            self.allocated += 1
            return bytearray(CHUNK)
        buffer = self.free.get()
        if self.error is not None:
            self.free.put(buffer)
            raise self.error
        return buffer

    def give_back(self, buffer: bytearray) -> None:
        self.free.put(buffer)

    def write(self, buffer: bytearray, count: int) -> None:
        """Append `buffer[:count]` to `out`, then hash it."""
        self.to_write.put((buffer, count))

    def hash_only(self, buffer: bytearray, count: int) -> None:
        """Hash bytes that are already in the file (an earlier attempt's)."""
        self.to_hash.put((buffer, count))

    def _writer(self) -> None:
        while True:
            item = self.to_write.get()
            if item is not None and self.error is None:
                try:
                    _write_all(self.out, memoryview(item[0])[: item[1]])
                except BaseException as exc:  # noqa: BLE001 - raised by take() in the caller's thread
                    self.error = exc
            self.to_hash.put(item)
            self.to_write.task_done()
            if item is None:
                return

    def _hasher(self) -> None:
        while True:
            item = self.to_hash.get()
            if item is not None:
                if self.error is None:
                    try:
                        self.hash.update(memoryview(item[0])[: item[1]])
                    except BaseException as exc:  # noqa: BLE001
                        self.error = exc
                self.free.put(item[0])
            self.to_hash.task_done()
            if item is None:
                return

    def update_from_file(self, path: Path) -> int:
        """Hash an existing partial file (the only re-read zoo ever does: bytes from an earlier attempt)."""
        size = 0
        with open(path, "rb") as stream:
            while True:
                buffer = self.take()
                count = stream.readinto(buffer)
                if not count:
                    self.give_back(buffer)
                    return size
                size += count
                self.hash_only(buffer, count)

    def drain(self) -> None:
        """Wait until every chunk handed over so far is written and hashed."""
        self.to_write.join()
        self.to_hash.join()

    def restart(self) -> None:
        """Forget everything hashed so far (the file is being downloaded again from byte 0)."""
        self.drain()
        self.hash = hashlib.sha256()

    def digest(self) -> str:
        self.stop()
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error
        return self.hash.hexdigest()

    def stop(self) -> None:
        if self.threads[0].is_alive():
            self.to_write.put(None)


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
    pipeline = _Pipeline()
    try:
        offset = pipeline.update_from_file(part) if resume and part.exists() else 0
        resumed_from = offset
        if not offset:
            part.write_bytes(b"")
        attempt = 0
        while True:
            try:
                offset, total = _attempt(open_source, url, part, pipeline, offset, expected_size, progress)
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
                if pipeline.error:
                    raise pipeline.error from None
        return Downloaded(pipeline.digest(), offset, resumed_from)
    finally:
        pipeline.stop()


def _attempt(open_source, url, part, pipeline, offset, expected_size, progress) -> tuple[int, int | None]:
    opened = open_source(url, offset)
    try:
        if offset and not opened.resumed:
            _restart(pipeline, part)
            offset = 0
        total = opened.size if opened.size is not None else expected_size
        if total is not None and offset > total:  # a stale partial from a different file
            opened.close()
            _restart(pipeline, part)
            return _attempt(open_source, url, part, pipeline, 0, expected_size, progress)
        offset = _pump(opened, part, pipeline, offset, total, progress, url)
    finally:
        opened.close()
    if total is not None and offset != total:
        raise TransientError(f"{url}: connection closed after {offset} of {total} bytes")
    return offset, total


def _restart(pipeline: _Pipeline, part: Path) -> None:
    pipeline.restart()
    part.write_bytes(b"")


def _pump(opened: OpenedSource, part: Path, pipeline: _Pipeline, offset: int, total, progress, url: str) -> int:
    stream = opened.stream
    readinto = getattr(stream, "readinto", None)
    with open(part, "r+b", buffering=0) as out:  # straight to the file: no copy through a Python buffer
        out.seek(offset)
        out.truncate()
        pipeline.out = out
        try:
            while True:
                buffer = pipeline.take()
                try:
                    if readinto is not None:
                        count = readinto(buffer)
                    else:
                        data = stream.read(CHUNK)
                        count = len(data)
                        buffer[:count] = data
                except NETWORK_ERRORS as exc:
                    pipeline.give_back(buffer)
                    raise TransientError(f"{url}: {type(exc).__name__} after {offset} bytes: {exc}") from None
                except BaseException:
                    pipeline.give_back(buffer)
                    raise
                if not count:
                    pipeline.give_back(buffer)
                    return offset
                pipeline.write(buffer, count)
                offset += count
                if progress is not None:
                    progress(offset, total)
        finally:
            pipeline.drain()  # every chunk received is in the file before it is closed (or resumed from)
            pipeline.out = None


def _write_all(out, view: memoryview) -> None:
    while view:
        view = view[out.write(view) :]
