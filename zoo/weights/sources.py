"""Weight sources: what a URL scheme opens. `OpenedSource` is the contract; http(s) and file are built in.

A source is any object with `open(url, offset=0) -> OpenedSource`. Plugins register them per scheme with
the `register_weight_sources` hook (docs/plugins.md); zoo hashes, verifies and caches what they return.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from zoo.errors import ZooError

if TYPE_CHECKING:  # http.client (and ssl) are imported when a download starts, not by `zoo list`
    import http.client

USER_AGENT = "zoo-fetch/0.1"


class FetchError(ZooError):
    """A download failed for good (a 4xx, a hash mismatch, retries exhausted, offline with no cached file)."""

    exit_code = 5


class TransientError(FetchError):
    """A failure worth retrying: connection error, timeout, 5xx, a body shorter than announced."""


@dataclass
class OpenedSource:
    """What `source.open(url, offset)` returns: a binary stream and what is known about it.

    `size` is the size of the whole file (not of the remaining part) when known, else None.
    `resumed` is True when the stream starts at the requested `offset`, False when it starts at 0.
    """

    stream: BinaryIO
    size: int | None = None
    resumed: bool = False

    def close(self) -> None:
        try:
            self.stream.close()
        except Exception:  # noqa: BLE001 - closing a broken connection must not hide the real error
            pass


def timeout() -> float:
    return float(os.environ.get("ZOO_FETCH_TIMEOUT", "30"))


class HttpSource:
    """http and https with Range requests for resume; follows up to 10 redirects."""

    def open(self, url: str, offset: int = 0) -> OpenedSource:
        for _ in range(10):
            response = self._request(url, offset)
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                response.close()
                if not location:
                    raise FetchError(f"{url}: HTTP {response.status} redirect without a Location header")
                from urllib.parse import urljoin

                url = urljoin(url, location)
                continue
            return self._opened(url, offset, response)
        raise FetchError(f"{url}: too many redirects")

    def _request(self, url: str, offset: int) -> http.client.HTTPResponse:
        import http.client

        parts = urlsplit(url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        connection = cls(parts.hostname or "", parts.port, timeout=timeout())
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("GET", path, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise TransientError(f"{url}: {type(exc).__name__}: {exc}") from exc

    def _opened(self, url: str, offset: int, response: http.client.HTTPResponse) -> OpenedSource:
        status = response.status
        if status >= 500 or status == 429:
            response.close()
            raise TransientError(f"{url}: HTTP {status} {response.reason}")
        if status == 416 and offset:
            response.close()
            return self.open(url, 0)  # the partial file is no use: start again
        if status >= 400:
            response.close()
            raise FetchError(f"{url}: HTTP {status} {response.reason}")
        length = response.getheader("Content-Length")
        remaining = int(length) if length and length.isdigit() else None
        if status == 206:
            total = _range_total(response.getheader("Content-Range"))
            start = _range_start(response.getheader("Content-Range"))
            if start != offset:
                response.close()
                return self.open(url, 0)
            return OpenedSource(response, total, True)  # type: ignore[arg-type]
        return OpenedSource(response, remaining, False)  # type: ignore[arg-type]


def _range_total(header: str | None) -> int | None:
    total = (header or "").rpartition("/")[2]
    return int(total) if total.isdigit() else None


def _range_start(header: str | None) -> int | None:
    spec = (header or "").partition(" ")[2].partition("-")[0]
    return int(spec) if spec.isdigit() else None


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
