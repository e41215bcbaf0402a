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
        http_server.wrong_range("w-0123abcd.pth", back=100)      # a 206 from 100 bytes before the one asked
        http_server.stall("w-0123abcd.pth", at=1000)             # 1000 bytes, then silence (until clear_faults)
        http_server.redirect("a", to="b")                         # 302 to another name (or a full URL)
        http_server.html("w-0123abcd.pth")                       # 200 text/html: a captive portal's login page
        http_server.overlong("w-0123abcd.pth", extra=500)        # the file, then 500 bytes past Content-Length
        http_server.no_length("w-0123abcd.pth")                  # no Content-Length: the body ends when it closes
        http_server.chunked("w-0123abcd.pth", chunk=1000)        # Transfer-Encoding: chunked, 1000-byte chunks
        http_server.huge_headers("w-0123abcd.pth", line=70_000)  # one 70 kB header line (or count=150 headers)
        http_server.slow_headers("w-0123abcd.pth", delay=0.1)    # the headers one byte per 0.1 s, never ending
        http_server.add_hub_file("timm/x", "model.safetensors", data)  # a Hugging Face resolve URL: 302 to a
                                                                  # CDN host (`localhost`) with X-Linked-Etag etc.
        http_server.requests                                      # [Request(path, range, status, sent, auth)]
        http_server.wait_for_requests("w-0123abcd.pth", 2)        # once two responses are over

Counted faults apply one after another, each to the next `times` requests for that path; a fault with
times=None applies to every request. Faults on a name that has no file (a redirect) work too. Files given
as a Path are streamed with sendfile, so the server keeps up with a 500 MB benchmark.
`unresponsive_port()` gives a port whose connects hang, for connect timeouts.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHUNK = 64 << 10


@dataclass
class Fault:
    kind: str  # "status", "truncate", "reset", "stall", "slow", "corrupt", "no_range", "redirect", "html",
    # "overlong", "no_length", "chunked", "huge_headers", "slow_headers", "wrong_range"
    times: int | None = 1
    status: int = 500
    at: int = 0
    delay: float = 0.0
    chunk: int = CHUNK  # bytes per write ("slow", "chunked")
    extra: int = 0  # "overlong": bytes past Content-Length; "huge_headers": a header line's length
    count: int = 0  # "huge_headers": how many headers
    location: str = ""  # "redirect"
    body: bytes = b""  # "html"
    content_type: str = ""  # "html"


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None
    status: int
    sent: int
    authorization: str | None = None  # the request's Authorization header


@dataclass(frozen=True)
class HubRoute:
    """A Hugging Face hub resolve URL: a 302 to the CDN copy, with the hub's metadata headers."""

    location: str
    headers: dict[str, str]
    token: str | None = None  # a gated repository: 401 without `Authorization: Bearer <token>`


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
        self.hub: dict[str, HubRoute] = {}
        self.release = threading.Event()  # ends every stall (set by clear_faults and stop)

    # lifecycle -----------------------------------------------------------------------------------------
    def start(self) -> FileServer:
        handler = type("Handler", (_Handler,), {"server_state": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
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

    def add_hub_file(
        self,
        repo_id: str,
        filename: str,
        data: bytes,
        *,
        revision: str = "main",
        commit: str = "0123456789abcdef0123456789abcdef01234567",
        etag: str | None = "sha256",
        token: str | None = None,
        cdn_host: str = "localhost",
    ) -> str:
        """Serve `data` as the hub does: `/<repo>/resolve/<revision>/<file>` answers 302 to `/cdn/<sha256>` on
        `cdn_host` (another origin than 127.0.0.1) with X-Linked-Etag (the sha256, or `etag` if given; None
        for none), X-Linked-Size and X-Repo-Commit. Returns the resolve URL (HF_ENDPOINT is `base_url`)."""
        sha = hashlib.sha256(data).hexdigest()
        cdn = self.add(f"cdn/{sha}", data).replace("127.0.0.1", cdn_host, 1)
        headers = {"X-Linked-Size": str(len(data)), "X-Repo-Commit": commit, "ETag": f'"{sha}"'}
        if etag is not None:
            headers["X-Linked-Etag"] = f'"{sha if etag == "sha256" else etag}"'
        path = f"{repo_id}/resolve/{revision}/{filename}"
        self.hub[path] = HubRoute(cdn, headers, token)
        return self.url(path)

    def _fault(self, name: str, fault: Fault) -> None:
        with self._lock:
            self.faults.setdefault(name.lstrip("/"), []).append(fault)

    def fail(self, name: str, status: int = 500, times: int | None = 1) -> None:
        self._fault(name, Fault("status", times, status=status))

    def truncate(self, name: str, at: int, times: int | None = 1) -> None:
        self._fault(name, Fault("truncate", times, at=at))

    def reset(self, name: str, at: int, times: int | None = 1) -> None:
        self._fault(name, Fault("reset", times, at=at))

    def stall(self, name: str, at: int, seconds: float = 60.0, times: int | None = 1) -> None:
        """Send `at` bytes, then nothing for `seconds` (or until `clear_faults`), then close."""
        self._fault(name, Fault("stall", times, at=at, delay=seconds))

    def slow(self, name: str, delay: float, times: int | None = None, chunk: int = CHUNK) -> None:
        """Sleep `delay` seconds before each `chunk` bytes."""
        self._fault(name, Fault("slow", times, delay=delay, chunk=chunk))

    def redirect(self, name: str, to: str, status: int = 302, times: int | None = None) -> None:
        """Answer `status` with `Location: to` (a name on this server, or a full URL)."""
        location = to if not to or "://" in to or to.startswith("/") else f"/{to}"  # "": no Location header
        self._fault(name, Fault("redirect", times, status=status, location=location))

    def html(self, name: str, body: bytes | None = None, times: int | None = None, content_type: bool = True) -> None:
        """Answer 200 with an HTML page (`content_type=False`: labelled application/octet-stream)."""
        page = body or b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Log in first</body></html>\n"
        label = "text/html; charset=utf-8" if content_type else "application/octet-stream"
        self._fault(name, Fault("html", times, body=page, content_type=label))

    def overlong(self, name: str, extra: int, times: int | None = None) -> None:
        """Send the file, then `extra` junk bytes that its Content-Length does not count."""
        self._fault(name, Fault("overlong", times, extra=extra))

    def no_length(self, name: str, times: int | None = None) -> None:
        """No Content-Length: the body ends when the server closes the connection."""
        self._fault(name, Fault("no_length", times))

    def chunked(self, name: str, chunk: int, delay: float = 0.0, times: int | None = None) -> None:
        """Transfer-Encoding: chunked, `chunk` bytes per chunk, `delay` seconds before each."""
        self._fault(name, Fault("chunked", times, chunk=chunk, delay=delay))

    def huge_headers(self, name: str, line: int = 0, count: int = 0, times: int | None = None) -> None:
        """Headers past http.client's limits: one header line of `line` bytes, or `count` headers."""
        self._fault(name, Fault("huge_headers", times, extra=line, count=count))

    def corrupt(self, name: str, times: int | None = None) -> None:
        self._fault(name, Fault("corrupt", times))

    def no_range(self, name: str, times: int | None = None) -> None:
        self._fault(name, Fault("no_range", times))

    def wrong_range(self, name: str, back: int, times: int | None = None) -> None:
        """Answer a Range request with a 206 that starts `back` bytes before the byte asked for."""
        self._fault(name, Fault("wrong_range", times, at=back))

    def slow_headers(self, name: str, delay: float, times: int | None = None) -> None:
        """Send a status line, then a header one byte per `delay` seconds until `clear_faults` (or 60 s)."""
        self._fault(name, Fault("slow_headers", times, delay=delay))

    def clear_faults(self) -> None:
        """Remove every fault and end the stalls in progress."""
        with self._lock:
            self.faults.clear()
        self.release.set()
        self.release = threading.Event()

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
            request = replace(self._serve(), authorization=self.headers.get("Authorization"))
        finally:
            self.server_state._end(request)

    def do_HEAD(self) -> None:  # noqa: N802 - huggingface_hub asks the hub for a file's metadata with HEAD
        self.server_state._begin()
        request = None
        try:
            name = self.path.split("?", 1)[0].lstrip("/")
            route = self.server_state.hub.get(name)
            if route is not None:
                request = self._hub(name, None, route)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                request = Request(name, None, 404, 0)
            request = replace(request, authorization=self.headers.get("Authorization"))
        finally:
            self.server_state._end(request)

    def _serve(self) -> Request:
        """Answer one GET; the request as logged."""
        state = self.server_state
        name = self.path.split("?", 1)[0].lstrip("/")
        range_header = self.headers.get("Range")
        data = state.files.get(name)
        faults = {f.kind: f for f in state._take_faults(name)}
        if "redirect" in faults:
            return self._redirect(name, range_header, faults["redirect"])
        if "slow_headers" in faults:
            return self._slow_headers(name, range_header, faults["slow_headers"])
        if name in state.hub:
            return self._hub(name, range_header, state.hub[name])
        if data is None:
            return self._status(name, range_header, 404)
        if "status" in faults:
            return self._status(name, range_header, faults["status"].status)
        if "html" in faults:
            return self._html(name, range_header, faults["html"])
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
        if start and "wrong_range" in faults:
            start = max(0, start - faults["wrong_range"].at)  # a 206 that starts elsewhere than asked
        status = 206 if range_header and "no_range" not in faults and (start or "wrong_range" in faults) else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        chunked = "chunked" in faults
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif "no_length" in faults:
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(size - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if "huge_headers" in faults:
            self._huge_headers(faults["huge_headers"])
        self.end_headers()
        self.wfile.flush()
        stop = size
        for kind in ("truncate", "reset", "stall"):
            if kind in faults:
                stop = min(size, max(start, faults[kind].at))
        sent = self._body(data, start, stop, faults)
        if "stall" in faults:
            release = state.release
            release.wait(faults["stall"].delay)
        if chunked and stop == size:
            self._write(b"0\r\n\r\n")
        if "overlong" in faults:
            self._write(b"J" * faults["overlong"].extra)
        if "reset" in faults:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif stop < size or "overlong" in faults or "stall" in faults:
            self.close_connection = True
        return Request(name, range_header, status, sent)

    def _body(self, data: bytes | Path, start: int, stop: int, faults: dict[str, Fault]) -> int:
        pace = faults.get("slow") or faults.get("chunked")
        delay = pace.delay if pace else 0.0
        chunk = pace.chunk if pace else CHUNK
        chunked = "chunked" in faults
        corrupt_at = (start + stop) // 2 if "corrupt" in faults else -1
        try:
            if isinstance(data, Path) and not pace and corrupt_at < 0:
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
                    count = min(chunk, stop - position)
                    piece = bytearray(view[position : position + count] if view is not None else stream.read(count))
                    if position <= corrupt_at < position + count:
                        piece[corrupt_at - position] ^= 0xFF
                    if chunked:
                        piece = b"%x\r\n" % count + piece + b"\r\n"
                    self.wfile.write(piece)
                    self.wfile.flush()
                    position += count
            return position - start
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return 0

    def _write(self, data: bytes) -> None:
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _huge_headers(self, fault: Fault) -> None:
        if fault.extra:
            self.send_header("X-Huge", "h" * fault.extra)
        for index in range(fault.count):
            self.send_header(f"X-Header-{index}", "x")

    def _slow_headers(self, name: str, range_header: str | None, fault: Fault) -> Request:
        release, until = self.server_state.release, time.monotonic() + 60
        self._write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not release.wait(fault.delay) and time.monotonic() < until and not self.close_connection:
            self._write(b"s")
        self.close_connection = True
        return Request(name, range_header, 200, 0)

    def _redirect(self, name: str, range_header: str | None, fault: Fault) -> Request:
        self.send_response(fault.status)
        if fault.location:
            self.send_header("Location", fault.location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return Request(name, range_header, fault.status, 0)

    def _html(self, name: str, range_header: str | None, fault: Fault) -> Request:
        self.send_response(200)
        self.send_header("Content-Type", fault.content_type)
        self.send_header("Content-Length", str(len(fault.body)))
        self.end_headers()
        self._write(fault.body)
        return Request(name, range_header, 200, len(fault.body))

    def _hub(self, name: str, range_header: str | None, route: HubRoute) -> Request:
        if route.token and self.headers.get("Authorization") != f"Bearer {route.token}":
            if self.command == "HEAD":  # a HEAD answer has no body
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return Request(name, range_header, 401, 0)
            return self._status(name, range_header, 401)
        self.send_response(302)
        for header, value in route.headers.items():
            self.send_header(header, value)
        self.send_header("Location", route.location)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return Request(name, range_header, 302, 0)

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


@contextlib.contextmanager
def unresponsive_port():
    """A port on 127.0.0.1 whose listen queue is full: a connect to it hangs until the client's timeout."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.create_connection(listener.getsockname(), timeout=5)  # the one place in the queue
    try:
        yield listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()
