"""A real threaded HTTP server on 127.0.0.1 for tests and benchmarks: Range requests, fault injection, a log.

    from http_server import FileServer, http_server  # noqa: F401  (the fixture, in a test module)

    def test_x(http_server):
        url = http_server.add("w-0123abcd.pth", data)          # bytes or a Path; returns its URL
        http_server.fail("w-0123abcd.pth", status=500, times=2)   # two 500s, then the file
        http_server.truncate("w-0123abcd.pth", at=1000)          # announce it all, send 1000 bytes, close
        http_server.reset("w-0123abcd.pth", at=1000)             # 1000 bytes, then a TCP reset
        http_server.slow("w-0123abcd.pth", delay=0.05)           # sleep before each 64 KiB chunk
        http_server.corrupt("w-0123abcd.pth")                    # flip a byte in the middle
        http_server.no_range("w-0123abcd.pth")                   # ignore Range: always 200, whole file
        http_server.requests                                      # [Request(path, range, status, sent)]
        http_server.wait_for_requests("w-0123abcd.pth", 2)        # once two responses are over

Counted faults apply one after another, each to the next `times` requests for that path; a fault with
times=None applies to every request. Files given as a
Path are streamed with sendfile, so the server keeps up with a 500 MB benchmark.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHUNK = 64 << 10


@dataclass
class Fault:
    kind: str  # "status", "truncate", "reset", "slow", "corrupt", "no_range"
    times: int | None = 1
    status: int = 500
    at: int = 0
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None
    status: int
    sent: int


class FileServer:
    """Serves named files (bytes or Paths) under `base_url`, with faults per file, from a daemon thread."""

    def __init__(self) -> None:
        self.files: dict[str, bytes | Path] = {}
        self.faults: dict[str, list[Fault]] = {}
        self._log: list[Request] = []
        self._active = 0  # responses being written
        self._idle = threading.Condition()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> FileServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the server first"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    # content and faults --------------------------------------------------------------------------------
    def add(self, name: str, data: bytes | Path) -> str:
        """Serve `data` at `/<name>` (name may contain `/`); returns its URL."""
        self.files[name.lstrip("/")] = data
        return self.url(name.lstrip("/"))

    def _fault(self, name: str, fault: Fault) -> None:
        with self._lock:
            self.faults.setdefault(name.lstrip("/"), []).append(fault)

    def fail(self, name: str, status: int = 500, times: int | None = 1) -> None:
        self._fault(name, Fault("status", times, status=status))

    def truncate(self, name: str, at: int, times: int | None = 1) -> None:
        self._fault(name, Fault("truncate", times, at=at))

    def reset(self, name: str, at: int, times: int | None = 1) -> None:
        self._fault(name, Fault("reset", times, at=at))

    def slow(self, name: str, delay: float, times: int | None = None) -> None:
        self._fault(name, Fault("slow", times, delay=delay))

    def corrupt(self, name: str, times: int | None = None) -> None:
        self._fault(name, Fault("corrupt", times))

    def no_range(self, name: str, times: int | None = None) -> None:
        self._fault(name, Fault("no_range", times))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    @property
    def requests(self) -> list[Request]:
        """Every request, once the responses being written are over (a client may finish reading first)."""
        with self._idle:
            self._idle.wait_for(lambda: self._active == 0, timeout=5.0)
            return list(self._log)

    def requests_for(self, name: str) -> list[Request]:
        """The requests for `name` (see `requests`)."""
        return [r for r in self.requests if r.path == name.lstrip("/")]

    def wait_for_requests(self, name: str, count: int, timeout: float = 10.0) -> list[Request]:
        """The requests for `name` once `count` responses are over (a stalled one finishes late)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._idle:
                found = [r for r in self._log if r.path == name.lstrip("/")]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)

    def _begin(self) -> None:
        with self._idle:
            self._active += 1

    def _end(self, request: Request | None) -> None:
        with self._idle:
            if request is not None:
                self._log.append(request)
            self._active -= 1
            self._idle.notify_all()

    def _take_faults(self, name: str) -> list[Fault]:
        """Every persistent fault (times=None), plus the first counted one, which is used up."""
        with self._lock:
            active = self.faults.get(name, [])
            taken = [f for f in active if f.times is None]
            counted = next((f for f in active if f.times is not None), None)
            if counted is not None:
                taken.append(counted)
                counted.times -= 1
            self.faults[name] = [f for f in active if f.times is None or f.times > 0]
        return taken


class _Handler(BaseHTTPRequestHandler):
    server_state: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.server_state._begin()
        request = None
        try:
            request = self._serve()
        finally:
            self.server_state._end(request)

    def _serve(self) -> Request:
        """Answer one GET; the request as logged."""
        state = self.server_state
        name = self.path.split("?", 1)[0].lstrip("/")
        range_header = self.headers.get("Range")
        data = state.files.get(name)
        faults = {f.kind: f for f in state._take_faults(name)} if data is not None else {}
        if data is None:
            return self._status(name, range_header, 404)
        if "status" in faults:
            return self._status(name, range_header, faults["status"].status)
        size = data.stat().st_size if isinstance(data, Path) else len(data)
        start = 0
        if range_header and "no_range" not in faults:
            spec = range_header.partition("=")[2].partition("-")[0]
            start = int(spec) if spec.isdigit() else 0
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return Request(name, range_header, 416, 0)
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        self.end_headers()
        self.wfile.flush()
        stop = size
        for kind in ("truncate", "reset"):
            if kind in faults:
                stop = min(size, max(start, faults[kind].at))
        sent = self._body(data, start, stop, faults)
        if "reset" in faults:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif stop < size:
            self.close_connection = True
        return Request(name, range_header, status, sent)

    def _body(self, data: bytes | Path, start: int, stop: int, faults: dict[str, Fault]) -> int:
        delay = faults["slow"].delay if "slow" in faults else 0.0
        corrupt_at = (start + stop) // 2 if "corrupt" in faults else -1
        try:
            if isinstance(data, Path) and not delay and corrupt_at < 0:
                with open(data, "rb") as stream:
                    return self.connection.sendfile(stream, start, stop - start)
            view = memoryview(data) if isinstance(data, bytes) else None
            position = start
            with open(data, "rb") if isinstance(data, Path) else _nothing() as stream:
                if stream is not None:
                    stream.seek(start)
                while position < stop:
                    if delay:
                        time.sleep(delay)
                    count = min(CHUNK, stop - position)
                    chunk = bytearray(view[position : position + count] if view is not None else stream.read(count))
                    if position <= corrupt_at < position + count:
                        chunk[corrupt_at - position] ^= 0xFF
                    self.wfile.write(chunk)
                    position += count
            return position - start
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return 0

    def _status(self, name: str, range_header: str | None, status: int) -> Request:
        body = f"{status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return Request(name, range_header, status, 0)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@pytest.fixture
def http_server():
    """A started FileServer on 127.0.0.1, stopped after the test."""
    with FileServer() as server:
        yield server
