"""Stream one URL into a `.part` file, sha256 computed on the way, resume from where a previous attempt
stopped, retries within zoo.weights.retrying's bounds, the size checked (never a byte past it).

Each chunk goes from the socket (main thread) to the file (a writer thread) to sha256 (a hasher thread)
and back to a small pool of buffers. File writes and hashlib release the GIL on large buffers, so
receiving chunk i+1, writing chunk i and hashing chunk i-1 run at the same time: a download takes about
as long as the slowest of the three, where hashing inline would add them up.
"""

from __future__ import annotations

import hashlib
import http.client
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.weights.retrying import Failure, GaveUp, RetryBudget, amount, backoff, retries  # noqa: F401 - re-exported
from zoo.weights.sources import FetchError, OpenedSource, TransientError, expects_html, html_page_error, read_timeout

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
    started: float | None = None,
) -> Downloaded:
    """Download `url` into `part` (resuming an existing `part` when `resume`), returning its sha256 and size.

    Raises FetchError at once for permanent failures, and GaveUp when zoo.weights.retrying's bounds are
    reached (attempts, the same failure twice, the file's deadline counted from `started`). `part` is left
    in place for a later resume.
    """
    run = _Download(open_source, url, part, expected_size, progress, RetryBudget(url, started))
    try:
        return run.until_done(part.stat().st_size if resume and part.exists() else 0)
    finally:
        run.pipeline.stop()


class _Download:
    """The attempts at one URL: each opens the source at the bytes already in `part` and pumps the rest in."""

    def __init__(self, open_source, url: str, part: Path, expected_size, progress, budget: RetryBudget) -> None:
        self.open_source = open_source
        self.url = url
        self.part = part
        self.expected_size = expected_size
        self.progress = progress
        self.budget = budget
        self.pipeline = _Pipeline()
        self.total: int | None = expected_size
        self.unhashed = False  # `part` holds bytes from an earlier run, hashed once a resume is granted
        self.restarted = False  # this attempt asked to resume and the source sent the file from byte 0
        self.timed_out = False

    def until_done(self, offset: int) -> Downloaded:
        self.unhashed = offset > 0
        if not offset:
            self.part.write_bytes(b"")
        resumed_from = offset
        while True:
            if self.budget.remaining(self.total) <= 0:
                raise self.budget.out_of_time(self.part.stat().st_size, self.total)
            try:
                offset = self.attempt(offset)
                break
            except GaveUp:
                raise
            except TransientError as exc:
                if self.pipeline.error is not None:
                    raise self.pipeline.error from None
                offset = self.part.stat().st_size
                time.sleep(self.budget.failed(Failure(exc.reason, offset, exc.patient, self.restarted), self.total))
            finally:
                resumed_from = 0 if self.restarted else resumed_from
        return Downloaded(self.pipeline.digest(), offset, resumed_from)

    def attempt(self, offset: int) -> int:
        """One attempt from `offset`; the file's size once complete."""
        self.restarted = False
        opened = self.open_source(self.url, offset)
        try:
            if opened.size is not None and self.expected_size is not None and opened.size != self.expected_size:
                raise FetchError(
                    f"{self.url}: the server announces {opened.size:,} bytes, the registry expects "
                    f"{self.expected_size:,}; not downloaded"
                )
            self.total = opened.size if opened.size is not None else self.expected_size
            if offset and opened.resumed and self.total is not None and offset > self.total:
                opened.close()  # a stale partial from a different file: start again
                self._restart()
                offset = 0
                opened = self.open_source(self.url, 0)
                self.total = opened.size if opened.size is not None else self.expected_size
            elif offset and not opened.resumed:
                self._restart()
                offset, self.restarted = 0, True
            elif self.unhashed:
                self.pipeline.update_from_file(self.part)
            self.unhashed = False
            offset = self._watched(opened, offset)
        finally:
            opened.close()
        if self.total is not None and offset != self.total:
            raise TransientError(f"the server closed the connection after {amount(offset, self.total)}")
        return offset

    def _restart(self) -> None:
        self.pipeline.restart()
        self.part.write_bytes(b"")

    def _watched(self, opened: OpenedSource, offset: int) -> int:
        """`_pump`, with the source aborted when the file's deadline passes (a stalled read included)."""
        self.timed_out = False

        def expire() -> None:
            self.timed_out = True
            if opened.abort is not None:
                opened.abort()

        timer = threading.Timer(max(0.0, self.budget.remaining(self.total)), expire)
        timer.daemon = True
        timer.start()
        try:
            return self._pump(opened, offset)
        except FetchError:
            if self.timed_out:
                raise self.budget.out_of_time(self.part.stat().st_size, self.total, self.budget.attempts + 1) from None
            raise
        finally:
            timer.cancel()

    def _pump(self, opened: OpenedSource, offset: int) -> int:
        """Stream `opened` into `part` from `offset`; the new size. Each buffer is filled by as many reads as it
        takes, and what a failed read leaves behind is kept (a stall after 3 MiB keeps the 3 MiB)."""
        with open(self.part, "r+b", buffering=0) as out:  # straight to the file: no copy through a Python buffer
            out.seek(offset)
            out.truncate()
            self.pipeline.out = out
            first = offset == 0
            try:
                while True:
                    buffer = self.pipeline.take()
                    filled, error, ended = self._fill(opened.stream, buffer, offset)
                    if filled and first:
                        first = False
                        self._refuse_html(opened, buffer, filled)
                    if self.total is not None and offset + filled > self.total:
                        self.pipeline.give_back(buffer)
                        whose = "it announced" if opened.size is not None else "the registry expects"
                        raise FetchError(
                            f"{self.url}: the server sent more than the {self.total:,} bytes {whose}; stopped reading"
                        )
                    if filled:
                        self.pipeline.write(buffer, filled)
                        offset += filled
                        if self.progress is not None:
                            self.progress(offset, self.total)
                    else:
                        self.pipeline.give_back(buffer)
                    if error is not None:
                        raise TransientError(_reason(error, offset, self.total)) from None
                    if self.timed_out or time.monotonic() >= self.budget.deadline(self.total):
                        self.timed_out = True
                        raise TransientError("deadline")
                    if ended:
                        return offset
            finally:
                self.pipeline.drain()  # every chunk received is in the file before it is closed (or resumed from)
                self.pipeline.out = None

    def _fill(self, stream, buffer: bytearray, offset: int) -> tuple[int, BaseException | None, bool]:
        """Read into `buffer` until it is full, the stream ends or a read fails: (bytes, the error, ended).
        With the size known, at most one byte past it is read (to see a body that is too long)."""
        room = CHUNK if self.total is None else max(1, min(CHUNK, self.total - offset + 1))
        view = memoryview(buffer)
        readinto = getattr(stream, "readinto", None)
        filled = 0
        while filled < room:
            try:
                if readinto is not None:
                    count = readinto(view[filled:room])
                else:
                    data = stream.read(room - filled)
                    count = len(data)
                    view[filled : filled + count] = data
            except NETWORK_ERRORS as exc:
                return filled, exc, False
            if not count:
                return filled, None, True
            filled += count
            if self.timed_out:
                break
        return filled, None, False

    def _refuse_html(self, opened: OpenedSource, buffer: bytearray, filled: int) -> None:
        """An HTML page where a file is expected (a sign-in portal that answers 200) ends the download."""
        start = bytes(buffer[: min(filled, 512)]).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
        if start.startswith((b"<!doctype html", b"<html")) and not expects_html(self.url):
            self.pipeline.give_back(buffer)
            content_type = opened.headers.get("content-type", "no Content-Type").partition(";")[0].strip()
            size = self.total if self.total is not None else f"at least {filled:,}"
            raise html_page_error(self.url, content_type, size)


def _reason(exc: BaseException, offset: int, total: int | None) -> str:
    """What a failed read means, in plain words."""
    where = amount(offset, total)
    if isinstance(exc, TimeoutError):
        return f"the server sent nothing for {read_timeout():g} s after {where}"
    if isinstance(exc, ConnectionResetError):
        return f"the connection was reset after {where}"
    if isinstance(exc, http.client.IncompleteRead | EOFError):
        return f"the server closed the connection after {where}"
    return f"{type(exc).__name__} after {where}: {exc}"


def _write_all(out, view: memoryview) -> None:
    while view:
        view = view[out.write(view) :]
