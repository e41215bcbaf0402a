"""Weight sources: what a URL scheme opens. `OpenedSource` is the contract; http(s) and file are built in.

A source is any object with `open(url, offset=0) -> OpenedSource`. Plugins register them per scheme with
the `register_weight_sources` hook (docs/plugins.md); zoo hashes, verifies and caches what they return.

The http source bounds everything a server controls: the connect (ZOO_FETCH_CONNECT_TIMEOUT), the response
headers (complete within ZOO_FETCH_TIMEOUT, within http.client's line and count limits), each read of the
body (ZOO_FETCH_TIMEOUT), redirects (10, loops named), and it refuses an HTML page where a file is expected.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urljoin, urlsplit

from zoo.errors import UserInputError, ZooError

if TYPE_CHECKING:  # http.client, socket, ssl and threading are imported when a download starts, not by `zoo list`
    import http.client
    import socket

USER_AGENT = "zoo-fetch/0.1"
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
HTML_TYPES = ("text/html", "application/xhtml+xml")
HTML_COUNT_LIMIT = 1 << 20  # an HTML page without Content-Length is counted up to this many bytes


class FetchError(ZooError):
    """A download failed for good (a 4xx, a hash mismatch, retries exhausted, offline with no cached file)."""

    exit_code = 5


class TransientError(FetchError):
    """A failure worth retrying: connection error, timeout, 5xx, a body shorter than announced.

    `reason` says what happened without the URL; `patient` marks a failure that tends to pass with time
    (a 5xx, a 429, a refused connection), retried with backoff even when it repeats exactly.
    """

    def __init__(self, message: str, *, reason: str | None = None, patient: bool = False) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.patient = patient


def transient(url: str, reason: str, *, patient: bool = False) -> TransientError:
    """`url: reason` as a TransientError."""
    return TransientError(f"{url}: {reason}", reason=reason, patient=patient)


@dataclass
class OpenedSource:
    """What `source.open(url, offset)` returns: a binary stream and what is known about it.

    `size` is the size of the whole file (not of the remaining part) when known, else None.
    `resumed` is True when the stream starts at the requested `offset`, False when it starts at 0.
    `abort`, when given, ends a read blocked in another thread (zoo calls it when a file's deadline passes).
    """

    stream: BinaryIO
    size: int | None = None
    resumed: bool = False
    # Response headers along the redirect chain (lower-case names, the first response's value wins):
    # the Hugging Face hub's `x-linked-etag` / `x-repo-commit` ride on its 302 to the CDN.
    headers: dict[str, str] = field(default_factory=dict)
    abort: Callable[[], None] | None = None

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            pass


def setting(name: str, default: float, *, integer: bool = False, positive: bool = False) -> float:
    """A number from the environment variable `name` (`default` when unset); a clear error when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 if positive else value >= 0) or math.isinf(value):
        kind = "a whole number" if integer else "a number of seconds"
        raise UserInputError(f"{name}={raw!r}: expected {kind}, {'above' if positive else 'at least'} 0")
    return value


def read_timeout() -> float:
    """Seconds a server may send nothing (ZOO_FETCH_TIMEOUT, default 30), also the limit for its headers."""
    return setting("ZOO_FETCH_TIMEOUT", 30.0, positive=True)


def connect_timeout() -> float:
    """Seconds to wait for a connection (ZOO_FETCH_CONNECT_TIMEOUT, default 15)."""
    return setting("ZOO_FETCH_CONNECT_TIMEOUT", 15.0, positive=True)


_IGNORES_RANGE: set[str] = set()  # servers (scheme://host:port) that answered a Range request with the whole file


def _server(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def ignores_range(url: str) -> bool:
    """Whether `url`'s server has ignored a Range request in this process (it is not asked again)."""
    return _server(url) in _IGNORES_RANGE


def forget_range_support() -> None:
    """Forget which servers ignore Range requests (a new run; tests)."""
    _IGNORES_RANGE.clear()


def html_page_error(url: str, content_type: str, size: int | str) -> FetchError:
    """The error for an HTML page served where a file is expected (a captive portal, a login page)."""
    count = f"{size:,}" if isinstance(size, int) else size
    return FetchError(
        f"{url}: the server returned an HTML page ({content_type}, {count} bytes) instead of the file "
        f"(a login page or a network's sign-in portal? open the URL in a browser)"
    )


def expects_html(url: str) -> bool:
    """Whether `url` names an HTML file (then an HTML page is what was asked for)."""
    return urlsplit(url).path.lower().endswith((".html", ".htm"))


class _Watchdog:
    """Calls `action` after `seconds` unless cancelled first; `fired` says whether it did."""

    def __init__(self, seconds: float, action: Callable[[], None]) -> None:
        import threading

        self.fired = False
        self._action = action
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        self._action()

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(sock: socket.socket | None) -> None:
    """Wake any thread blocked reading `sock` (its read returns end-of-file)."""
    import socket

    try:
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Body:
    """A response body: one socket read per `readinto` at most (a timeout loses nothing already received), and
    never a byte past Content-Length."""

    def __init__(self, response: http.client.HTTPResponse, connection, left: int | None) -> None:
        self.response = response
        self.connection = connection
        self.left = left  # None: until the connection closes, or the last chunk

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.left is not None:
            if self.left <= 0:
                return 0
            view = view[: self.left]
        if self.response.chunked:
            data = self.response.read1(min(len(view), 1 << 20))
            count = len(data)
            view[:count] = data
        elif self.response.fp is None:
            count = 0
        else:
            count = self.response.fp.readinto1(view)
        if self.left is not None:
            self.left -= count
        return count

    def read(self, size: int = -1) -> bytes:
        buffer = bytearray(size if size > 0 else 1 << 16)
        return bytes(buffer[: self.readinto(buffer)])

    def close(self) -> None:
        self.response.close()
        self.connection.close()


class HttpSource:
    """http and https with Range requests for resume; follows up to 10 redirects."""

    def open(self, url: str, offset: int = 0, headers: dict[str, str] | None = None) -> OpenedSource:
        """`headers` (a hub token) go to `url`'s host only: a redirect to another host drops them."""
        seen: dict[str, str] = {}
        origin = urlsplit(url)[:2]
        chain = [url]
        current = url
        while True:
            if headers and urlsplit(current)[:2] != origin:
                headers = None
            asked = 0 if ignores_range(current) else offset  # a server known to ignore Range is not asked again
            response, connection, sock = self._request(current, asked, headers)
            for name, value in response.getheaders():
                seen.setdefault(name.lower(), value)
            if response.status not in REDIRECTS:
                opened = self._opened(url, current, asked, response, connection, headers)
                if opened.abort is None:  # (a restart from byte 0 inside _opened has its own)
                    opened.abort = lambda sock=sock: _shutdown(sock)
                opened.headers = opened.headers | seen
                return opened
            location = (response.getheader("Location") or "").strip()
            response.close()
            connection.close()
            current = _redirect_target(url, chain, response.status, location)

    def _request(self, url: str, offset: int, extra: dict[str, str] | None = None):
        """Connect and send the GET; the response (headers read), its connection and socket, or a clear error."""
        import http.client

        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        limit = connect_timeout()
        connection = cls(parts.hostname or "", parts.port, timeout=limit)
        where = parts.netloc
        try:
            connection.connect()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _connect_error(url, where, limit, exc) from None
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(extra or {})}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        wait = read_timeout()
        sock = connection.sock
        sock.settimeout(wait)
        watchdog = _Watchdog(wait, lambda: _shutdown(sock))  # the status line and headers, all within `wait`
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            if watchdog.fired:  # cut short: what was parsed is not the server's whole answer
                raise TimeoutError
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise _response_error(url, wait, exc, watchdog.fired) from None
        finally:
            watchdog.cancel()
        return response, connection, sock  # the socket: getresponse may drop connection.sock

    def _opened(self, url, current, asked, response, connection, headers) -> OpenedSource:
        """The body of a final (non-redirect) response, or the error its status and headers call for."""
        status = response.status
        if status >= 500 or status == 429:
            connection.close()
            raise transient(url, f"HTTP {status} {response.reason}".rstrip(), patient=True)
        if status == 416 and asked:
            connection.close()
            return self.open(url, 0, headers)  # the partial file is no use: start again
        if status >= 400:
            connection.close()
            raise FetchError(f"{url}: HTTP {status} {response.reason}".rstrip())
        if status not in (200, 206):
            connection.close()
            raise FetchError(f"{url}: the server answered HTTP {status} {response.reason}, not the file".rstrip())
        length = _digits(response.getheader("Content-Length")) if not response.chunked else None
        content_type = (response.getheader("Content-Type") or "").partition(";")[0].strip().lower()
        if content_type in HTML_TYPES and not expects_html(current):
            size = length if length is not None else _count(response)
            connection.close()
            raise html_page_error(url, content_type, size)
        body = _Body(response, connection, length)
        if status == 206:
            content_range = response.getheader("Content-Range")
            start, total = _range_start(content_range), _range_total(content_range)
            if start != asked:
                connection.close()
                if asked:
                    return self.open(url, 0, headers)  # not where we asked: start again
                raise FetchError(f"{url}: the server answered a request for the whole file with part of it")
            return OpenedSource(body, total, True)  # type: ignore[arg-type]
        if asked:
            _IGNORES_RANGE.add(_server(current))
        return OpenedSource(body, length, False)  # type: ignore[arg-type]


def _redirect_target(url: str, chain: list[str], status: int, location: str) -> str:
    """Where a redirect leads (appended to `chain`), refusing a loop, an 11th hop and non-http targets."""
    if not location:
        raise FetchError(f"{url}: HTTP {status} redirect without a Location header")
    target = urljoin(chain[-1], location)
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: redirected to {target}, which is not an http(s) URL; not followed")
    if target in chain:
        raise FetchError(f"{url}: redirect loop: {' -> '.join([*chain[chain.index(target) :], target])}")
    chain.append(target)
    if len(chain) > MAX_REDIRECTS + 1:
        raise FetchError(
            f"{url}: more than {MAX_REDIRECTS} redirects ({chain[0]} -> {chain[1]} -> ... -> {chain[-1]}); not followed"
        )
    return target


def _connect_error(url: str, where: str, limit: float, exc: BaseException) -> FetchError:
    import socket

    if isinstance(exc, TimeoutError):
        return transient(url, f"could not connect to {where} within {limit:g} s (ZOO_FETCH_CONNECT_TIMEOUT)")
    if isinstance(exc, ConnectionRefusedError):
        return transient(url, f"{where} refused the connection", patient=True)
    if isinstance(exc, socket.gaierror):
        return transient(url, f"cannot resolve the host name in {where}: {exc.strerror or exc}")
    return transient(url, f"cannot connect to {where}: {getattr(exc, 'strerror', None) or exc}", patient=True)


def _response_error(url: str, wait: float, exc: BaseException, timed_out: bool) -> FetchError:
    """What a failure between sending the request and the end of the response headers means."""
    import http.client

    if timed_out or isinstance(exc, TimeoutError):
        return transient(url, f"the server sent no complete response headers within {wait:g} s (ZOO_FETCH_TIMEOUT)")
    if isinstance(exc, http.client.LineTooLong):
        what = str(exc).rpartition("reading ")[2] or "header line"
        limit = getattr(http.client, "_MAXLINE", 65536)
        return FetchError(f"{url}: the server sent a {what} longer than {limit:,} bytes; not a response zoo reads")
    if isinstance(exc, http.client.RemoteDisconnected):
        return transient(url, "the server closed the connection without answering")
    if isinstance(exc, ConnectionResetError):
        return transient(url, "the connection was reset before the server answered")
    if isinstance(exc, http.client.BadStatusLine):
        return FetchError(f"{url}: the server's answer is not HTTP (it began {str(exc)[:60]!r})")
    if isinstance(exc, http.client.HTTPException) and "more than" in str(exc):
        limit = getattr(http.client, "_MAXHEADERS", 100)
        return FetchError(f"{url}: the server sent more than {limit} response headers; not a response zoo reads")
    return transient(url, f"{type(exc).__name__} while waiting for the response: {exc}")


def _count(response) -> int | str:
    """The size of a body without Content-Length, read up to HTML_COUNT_LIMIT bytes."""
    total = 0
    try:
        while total <= HTML_COUNT_LIMIT:
            data = response.read1(1 << 16)
            if not data:
                return total
            total += len(data)
    except Exception:  # noqa: BLE001 - the page is refused either way; its size is only a detail
        return f"at least {total:,}"
    return f"over {HTML_COUNT_LIMIT:,}"


def _digits(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def _range_total(header: str | None) -> int | None:
    return _digits((header or "").rpartition("/")[2])


def _range_start(header: str | None) -> int | None:
    return _digits((header or "").partition(" ")[2].partition("-")[0])


class FileSource:
    """`file:///abs/path` URLs: a local file opened at `offset`."""

    local = True

    def open(self, url: str, offset: int = 0) -> OpenedSource:
        path = local_path(url)
        try:
            stream = open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as exc:
            raise FetchError(f"{url}: cannot open {path}: {exc.strerror}") from None
        size = os.fstat(stream.fileno()).st_size
        stream.seek(offset)
        return OpenedSource(stream, size, True)


def local_path(url: str) -> str:
    """The file system path of a `file:` URL."""
    return unquote(urlsplit(url).path)


def scheme_of(url: str) -> str:
    """`https` for `https://host/x`, `pkg` for `pkg:name`, "" for a plain path."""
    return urlsplit(url).scheme.lower()
