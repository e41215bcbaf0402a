"""The downloader against a hostile server (tests/http_server.py's faults, on 127.0.0.1): every retry bounded,
every wait bounded, the error in plain words, nothing but a `.part` left behind when it fails."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time

import pytest
from http_server import FileServer, http_server, unresponsive_port  # noqa: F401 - the fixture
from hypothesis import given, settings
from hypothesis import strategies as st
from weights_fixtures import registry_entry, sha256_hex, write_registry

from zoo.errors import UserInputError
from zoo.registry import catalogues
from zoo.weights import cache, sources
from zoo.weights.fetching import fetch, fetch_url
from zoo.weights.sources import FetchError

MiB = 1 << 20


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    """Timeouts of a fraction of a second, a fresh memory of which servers ignore Range."""
    monkeypatch.setenv("ZOO_FETCH_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_FETCH_CONNECT_TIMEOUT", "0.5")
    monkeypatch.setenv("ZOO_FETCH_BACKOFF", "0.01")
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "5")
    monkeypatch.delenv("ZOO_FETCH_DEADLINE", raising=False)
    sources.forget_range_support()
    yield
    sources.forget_range_support()


def _left_behind() -> list[str]:
    """The files in the cache's weights folder, records and locks aside."""
    root = cache.weights_dir()
    if not root.exists():
        return []
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not {".meta", ".locks"} & set(p.parts)
    )


def _only_a_part(name: str) -> None:
    """A failed fetch of `name` left nothing at its final path: at most its `.part`."""
    mine = [left for left in _left_behind() if left.rpartition("/")[2].startswith(name)]
    assert all(left.endswith(f"{name}.part") for left in mine), f"{mine} left in the cache after a failed fetch"


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except FetchError as exc:
        return exc, time.monotonic() - started


# The case: a stall after a third, Range ignored ----------------------------------------------------


def test_a_stall_after_a_third_with_range_ignored_ends_in_seconds_and_says_what_happened(http_server, tmp_path):  # noqa: F811
    """Before: six attempts from byte 0, each waiting out the read timeout, backoff 0.5..8 s, then 'gave up
    after 6 attempts' (19 s with a 0.5 s timeout; 3.5 min with the default 30 s). Now: two attempts."""
    data = os.urandom(3 * MiB)
    url = http_server.add("w.bin", data)
    http_server.no_range("w.bin")
    http_server.stall("w.bin", at=MiB, times=None)
    env = {**os.environ, "ZOO_HOME": str(tmp_path / "home"), "ZOO_FETCH_BACKOFF": "0.5", "ZOO_FETCH_RETRIES": "5"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "fetch", url, "--sha256", sha256_hex(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 5 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"Error: {url}: the server sent nothing for 0.5 s after 1,048,576 of 3,145,728 bytes, 2 times, and ignores "
        "Range requests, so every attempt restarted from the beginning; giving up"
    )
    assert elapsed < 5, f"took {elapsed:.1f} s"
    http_server.clear_faults()
    requests = http_server.wait_for_requests("w.bin", 2)
    assert sorted(r.range or "" for r in requests) == ["", "bytes=1048576-"]  # logged as each stall ends
    assert not (tmp_path / "home" / "weights" / "w.bin").exists()


def test_a_cut_at_the_same_byte_with_range_ignored_gives_up_after_the_second(http_server):  # noqa: F811
    data = os.urandom(24 * MiB)
    url = http_server.add("w.bin", data)
    http_server.no_range("w.bin")
    http_server.truncate("w.bin", at=8 * MiB, times=None)
    error, elapsed = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert str(error) == (
        f"{url}: the server closed the connection after 8,388,608 of 25,165,824 bytes, 2 times, and ignores Range "
        "requests, so every attempt restarted from the beginning; giving up"
    )
    assert [r.status for r in http_server.requests_for("w.bin")] == [200, 200]
    _only_a_part("w.bin")


def test_a_server_that_ignores_range_is_not_asked_again_in_this_run(http_server):  # noqa: F811
    first, second = os.urandom(300_000), os.urandom(300_000)
    http_server.no_range("a.bin")
    http_server.no_range("b.bin")
    http_server.truncate("a.bin", at=1000)
    assert fetch_url(http_server.add("a.bin", first), sha256=sha256_hex(first)).path.read_bytes() == first
    assert [r.range for r in http_server.requests_for("a.bin")] == [None, "bytes=1000-"]  # found out here
    url = http_server.add("b.bin", second)
    part = cache.part_path(cache.cache_key(url, "b.bin"))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(second[:5000])  # an earlier run's partial file
    assert fetch_url(url, sha256=sha256_hex(second)).path.read_bytes() == second
    assert [r.range for r in http_server.requests_for("b.bin")] == [None]  # no pretending to resume
    sources.forget_range_support()  # a new run asks again
    url = http_server.add("c.bin", second)
    part = cache.part_path(cache.cache_key(url, "c.bin"))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(second[:5000])
    assert fetch_url(url, sha256=sha256_hex(second)).path.read_bytes() == second
    assert [r.range for r in http_server.requests_for("c.bin")] == ["bytes=5000-"]


# Attempts: progress may continue; no progress, or the same failure again, ends it -----------------------------


def test_restarts_from_zero_that_get_no_further_are_retried_twice_not_five_times(http_server):  # noqa: F811
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    http_server.no_range("w.bin")
    for at in (MiB // 2, MiB // 4, MiB // 3, MiB // 5, MiB // 6, MiB // 7):  # never past the first cut
        http_server.truncate("w.bin", at=at)
    error, _ = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert str(error) == (
        f"{url}: 3 attempts in a row failed without new bytes (the last: the server closed the connection after "
        "209,715 of 1,048,576 bytes), and ignores Range requests, so every attempt restarted from the beginning; "
        "giving up"
    )
    assert len(http_server.requests_for("w.bin")) == 4  # ZOO_FETCH_RETRIES=5 would allow 6 after the first


def test_resumes_that_make_progress_continue_past_the_retries_in_a_row(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "2")
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    for fifth in range(1, 5):
        http_server.truncate("w.bin", at=fifth * len(data) // 5)
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data
    assert len(http_server.requests_for("w.bin")) == 5  # four cuts, each resumed further: more than 2 retries


def test_attempts_are_bounded_even_when_each_makes_progress(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "1")  # at most 4 retries in all
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    for tenth in range(1, 10):
        http_server.truncate("w.bin", at=tenth * len(data) // 10)
    error, _ = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert isinstance(error, FetchError)
    assert str(error).startswith(f"{url}: still incomplete after 5 attempts, the most zoo makes for one file")
    assert "the server closed the connection after 524,288 of 1,048,576 bytes" in str(error)
    assert len(http_server.requests_for("w.bin")) == 5
    assert _left_behind() == [f"{cache.cache_key(url, 'w.bin')}.part"]  # kept: the next fetch resumes
    http_server.clear_faults()
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data
    assert http_server.requests_for("w.bin")[-1].range == "bytes=524288-"


def test_server_errors_are_retried_with_backoff_up_to_the_retries_in_a_row(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_RETRIES", "3")
    data = os.urandom(1000)
    url = http_server.add("w.bin", data)
    http_server.fail("w.bin", status=503, times=None)
    error, _ = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert str(error) == (
        f"{url}: 4 attempts in a row failed without new bytes (the last: HTTP 503 Service Unavailable); giving up"
    )
    assert len(http_server.requests_for("w.bin")) == 4
    _only_a_part("w.bin")


def test_a_stall_keeps_the_bytes_received_before_it_and_resumes_there(http_server):  # noqa: F811
    """A read that times out inside a 4 MiB buffer keeps what it had (http.client's readinto would drop it)."""
    data = os.urandom(3 * MiB)
    url = http_server.add("w.bin", data)
    http_server.stall("w.bin", at=MiB + 12345, seconds=5)
    result, elapsed = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert result.path.read_bytes() == data and elapsed < 3
    http_server.clear_faults()
    assert sorted(r.range or "" for r in http_server.wait_for_requests("w.bin", 2)) == ["", f"bytes={MiB + 12345}-"]


# Time: the file's deadline, the connect timeout, the headers' limit --------------------------------------------


def test_a_trickle_that_never_times_out_is_ended_by_the_deadline(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_TIMEOUT", "5")
    monkeypatch.setenv("ZOO_FETCH_DEADLINE", "1")
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    http_server.slow("w.bin", delay=0.02, chunk=4096)  # 200 kB/s: 5 s for the file, never 5 s of silence
    error, elapsed = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    assert isinstance(error, FetchError) and elapsed < 3, f"{elapsed:.2f} s"  # without the deadline: 5 s
    assert str(error).startswith(f"{url}: not complete within its 1 s deadline (ZOO_FETCH_DEADLINE): ")
    assert str(error).endswith(" of 1,048,576 bytes after 1 attempt; giving up")
    _only_a_part("w.bin")


def test_the_deadline_is_the_files_across_its_mirrors(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_DEADLINE", "1")
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    mirrored = http_server.add(f"mirror/{cache.cache_key(url, 'w.bin')}", data)
    http_server.slow(f"mirror/{cache.cache_key(url, 'w.bin')}", delay=0.02, chunk=4096)  # 5 s at this pace
    error, elapsed = _timed(lambda: fetch_url(url, sha256=sha256_hex(data), mirrors=[f"{http_server.base_url}/mirror"]))
    assert elapsed < 1.8, f"{elapsed:.2f} s"
    assert str(error).startswith(f"could not fetch w.bin: {mirrored}: not complete within its 1 s deadline")
    assert str(error).endswith(
        f"; {url}: not tried: the file's 1 s deadline (ZOO_FETCH_DEADLINE) had passed at its other URLs; giving up"
    )
    assert http_server.requests_for("w.bin") == []


def test_the_deadline_ends_a_read_that_is_waiting(http_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ZOO_FETCH_TIMEOUT", "30")
    monkeypatch.setenv("ZOO_FETCH_DEADLINE", "1")
    data = os.urandom(MiB)
    url = http_server.add("w.bin", data)
    http_server.stall("w.bin", at=1000, seconds=20)
    error, elapsed = _timed(lambda: fetch_url(url, sha256=sha256_hex(data)))
    # Without the deadline the read waits out the 20 s stall (the read timeout is 30 s). Idle, this takes 1.2 s;
    # a loaded CI run took 1.803 s, so 1.8 s was a flake; 5 s still tells the deadline from the stall.
    assert elapsed < 5, f"{elapsed:.2f} s"
    assert str(error) == (
        f"{url}: not complete within its 1 s deadline (ZOO_FETCH_DEADLINE): 1,000 of 1,048,576 bytes after "
        "1 attempt; giving up"
    )


def test_a_connect_that_hangs_times_out_and_is_tried_twice(monkeypatch):
    monkeypatch.setenv("ZOO_FETCH_CONNECT_TIMEOUT", "0.3")
    with unresponsive_port() as port:
        url = f"http://127.0.0.1:{port}/w.bin"
        error, elapsed = _timed(lambda: fetch_url(url, sha256="0" * 64))
    assert str(error) == (
        f"{url}: could not connect to 127.0.0.1:{port} within 0.3 s (ZOO_FETCH_CONNECT_TIMEOUT), 2 times; giving up"
    )
    assert elapsed < 2
    _only_a_part("w.bin")


def test_headers_that_trickle_in_are_cut_at_the_read_timeout(http_server):  # noqa: F811
    url = http_server.add("w.bin", b"x" * 1000)
    http_server.slow_headers("w.bin", delay=0.05)  # a byte every 50 ms: no single read ever times out
    error, elapsed = _timed(lambda: fetch_url(url, sha256="0" * 64))
    assert str(error) == (
        f"{url}: the server sent no complete response headers within 0.5 s (ZOO_FETCH_TIMEOUT), 2 times; giving up"
    )
    assert elapsed < 2.5
    http_server.clear_faults()


# Everything else the server controls --------------------------------------------------------------------------


def test_redirects_are_followed_up_to_ten(http_server):  # noqa: F811
    data = os.urandom(5000)
    http_server.add("w.bin", data)
    hops = [f"hop{i}" for i in range(10)]
    for here, there in itertools.pairwise([*hops, "w.bin"]):
        http_server.redirect(here, to=there)
    assert fetch_url(http_server.url("hop0"), sha256=sha256_hex(data), file_name="w.bin").path.read_bytes() == data
    http_server.redirect("hop-1", to="hop0")  # eleven
    with pytest.raises(FetchError) as error:
        fetch_url(http_server.url("hop-1"), sha256=sha256_hex(data), file_name="x.bin")
    assert f"more than 10 redirects ({http_server.url('hop-1')} -> {http_server.url('hop0')} -> ... ->" in str(
        error.value
    )
    _only_a_part("x.bin")


def test_a_redirect_loop_is_named(http_server):  # noqa: F811
    http_server.redirect("a.bin", to="b.bin")
    http_server.redirect("b.bin", to="a.bin")
    a, b = http_server.url("a.bin"), http_server.url("b.bin")
    with pytest.raises(FetchError) as error:
        fetch_url(a, sha256="0" * 64)
    assert str(error.value) == f"{a}: redirect loop: {a} -> {b} -> {a}"
    assert len(http_server.requests) == 2  # found at once, not after ten hops
    _only_a_part("a.bin")


def test_a_redirect_without_a_location_is_a_clear_error(http_server):  # noqa: F811
    url = http_server.add("w.bin", b"x" * 1000)
    http_server.redirect("w.bin", to="", status=307)
    with pytest.raises(FetchError) as error:
        fetch_url(url, sha256=sha256_hex(b"x" * 1000))
    assert str(error.value) == f"{url}: HTTP 307 redirect without a Location header"
    _only_a_part("w.bin")


@pytest.mark.parametrize("status", [204, 304])
def test_a_success_status_without_the_file_is_refused(http_server, status):  # noqa: F811
    url = http_server.add("w.bin", b"x" * 1000)
    http_server.fail("w.bin", status=status, times=None)
    with pytest.raises(FetchError) as error:
        fetch_url(url)  # no hash: an empty body must not become the file
    assert str(error.value).startswith(f"{url}: the server answered HTTP {status} ")
    assert str(error.value).endswith(", not the file")
    assert _left_behind() == []


def test_a_partial_file_longer_than_the_file_starts_again_after_416(http_server):  # noqa: F811
    data = os.urandom(100_000)
    url = http_server.add("w.bin", data)
    part = cache.part_path(cache.cache_key(url, "w.bin"))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(os.urandom(150_000))  # left by another file of the same name
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data
    assert [(r.status, r.range) for r in http_server.requests_for("w.bin")] == [(416, "bytes=150000-"), (200, None)]


def test_a_206_from_another_byte_than_asked_starts_again(http_server):  # noqa: F811
    data = os.urandom(100_000)
    url = http_server.add("w.bin", data)
    part = cache.part_path(cache.cache_key(url, "w.bin"))
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(data[:50_000])
    http_server.wrong_range("w.bin", back=100)  # its bytes would land 100 bytes too late in the file
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data
    assert [(r.status, r.range) for r in http_server.requests_for("w.bin")] == [(206, "bytes=50000-"), (200, None)]


def test_a_redirect_to_a_local_file_is_not_followed(http_server, tmp_path):  # noqa: F811
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"secret")
    http_server.redirect("w.bin", to=secret.as_uri())
    with pytest.raises(FetchError, match="which is not an http\\(s\\) URL; not followed"):
        fetch_url(http_server.url("w.bin"), sha256=sha256_hex(b"secret"))
    _only_a_part("w.bin")


@pytest.mark.parametrize("labelled", [True, False], ids=["text/html", "sniffed"])
def test_an_html_page_instead_of_the_file_is_refused(http_server, labelled):  # noqa: F811
    """A sign-in portal answering 200 with its page: refused whatever its Content-Type says, nothing cached."""
    page = b"<!DOCTYPE html>\n<html><body>Sign in to the hotel wifi</body></html>\n"
    url = http_server.add("w.bin", os.urandom(1000))
    http_server.html("w.bin", body=page, content_type=labelled)
    with pytest.raises(FetchError) as error:
        fetch_url(url)  # no hash: only the HTML check stands between the page and the cache
    kind = "text/html" if labelled else "application/octet-stream"
    assert str(error.value).startswith(
        f"{url}: the server returned an HTML page ({kind}, {len(page)} bytes) instead of the file"
    )
    assert len(http_server.requests_for("w.bin")) == 1
    assert _left_behind() == []


def test_an_html_file_asked_for_is_fetched(http_server):  # noqa: F811
    page = b"<html><body>model card</body></html>"
    url = http_server.add("card.html", page)
    http_server.html("card.html", body=page)
    assert fetch_url(url, sha256=sha256_hex(page)).path.read_bytes() == page


def test_bytes_past_content_length_never_reach_the_file(http_server):  # noqa: F811
    data = os.urandom(100_000)
    url = http_server.add("w.bin", data)
    http_server.overlong("w.bin", extra=50_000)
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data


def _registry_file(http_server, tmp_path, monkeypatch, data: bytes, served: bytes) -> str:  # noqa: F811
    """`testzoo:net` whose registry size and sha256 are `data`'s, served as `served`."""
    http_server.add("net.bin", served)
    entry = registry_entry("net", http_server.url("net.bin"), data, family="testzoo", builder="x:y")
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    return http_server.url("net.bin")


def test_a_body_longer_than_the_registry_size_is_cut_and_refused(http_server, tmp_path, monkeypatch):  # noqa: F811
    data = os.urandom(200_000)
    url = _registry_file(http_server, tmp_path, monkeypatch, data, data + os.urandom(10 * MiB))
    http_server.no_length("net.bin")  # no Content-Length: only the registry's size bounds it
    with pytest.raises(FetchError) as error:
        fetch("testzoo:net")
    assert (
        str(error.value) == f"{url}: the server sent more than the 200,000 bytes the registry expects; stopped reading"
    )
    assert _left_behind() == []


def test_a_content_length_other_than_the_registry_size_is_refused_before_the_body(http_server, tmp_path, monkeypatch):  # noqa: F811
    data = os.urandom(200_000)
    url = _registry_file(http_server, tmp_path, monkeypatch, data, data + b"more")
    with pytest.raises(FetchError) as error:
        fetch("testzoo:net")
    assert (
        str(error.value) == f"{url}: the server announces 200,004 bytes, the registry expects 200,000; not downloaded"
    )
    assert len(http_server.requests_for("net.bin")) == 1
    assert _left_behind() == []


@pytest.mark.parametrize(
    ("line", "count", "message"),
    [
        (70_000, 0, "the server sent a header line longer than 65,536 bytes; not a response zoo reads"),
        (0, 150, "the server sent more than 100 response headers; not a response zoo reads"),
    ],
    ids=["long-line", "many-headers"],
)
def test_huge_headers_are_a_clear_error(http_server, line, count, message):  # noqa: F811
    url = http_server.add("w.bin", b"x" * 1000)
    http_server.huge_headers("w.bin", line=line, count=count)
    with pytest.raises(FetchError) as error:
        fetch_url(url, sha256=sha256_hex(b"x" * 1000))
    assert str(error.value) == f"{url}: {message}"
    assert len(http_server.requests_for("w.bin")) == 1
    _only_a_part("w.bin")


@pytest.mark.parametrize(("chunk", "delay"), [(1, 0.0), (997, 0.0005), (70_000, 0.01)])
def test_chunked_bodies_in_small_and_slow_chunks(http_server, chunk, delay):  # noqa: F811
    data = os.urandom(20_000 if chunk == 1 else 300_000)
    url = http_server.add("w.bin", data)
    http_server.chunked("w.bin", chunk=chunk, delay=delay)
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data


@pytest.mark.parametrize(
    ("variable", "value"),
    [("ZOO_FETCH_TIMEOUT", "soon"), ("ZOO_FETCH_CONNECT_TIMEOUT", "0"), ("ZOO_FETCH_RETRIES", "2.5")],
)
def test_a_setting_that_is_not_a_number_is_a_clear_error(http_server, monkeypatch, variable, value):  # noqa: F811
    monkeypatch.setenv(variable, value)
    url = http_server.add("w.bin", b"x")
    with pytest.raises(UserInputError, match=f"^{variable}='{value}': expected a "):
        fetch_url(url, sha256=sha256_hex(b"x"))


# Generated faults ------------------------------------------------------------------------------------------------

RETRIES = 3
TIMEOUT = 0.2
DEADLINE = 3.0
DATA = os.urandom(300_000)
_names = itertools.count()

faults = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.sampled_from([500, 502, 503, 429, 404])),
        st.tuples(st.sampled_from(["truncate", "reset", "stall"]), st.integers(0, len(DATA))),
    ),
    max_size=5,
)
transports = st.one_of(
    st.tuples(st.just("plain"), st.sampled_from([4096, 65536]), st.just(0.0)),
    st.tuples(st.just("chunked"), st.integers(1, 80_000), st.sampled_from([0.0, 0.001])),
    st.tuples(st.just("no_length"), st.just(65536), st.just(0.0)),
)


def _check_one(server: FileServer, size: int, steps, no_range: bool, transport) -> None:
    """One generated case: the verified file, or a FetchError that names the URL, within the deadline."""
    sources.forget_range_support()
    data = DATA[:size]
    name = f"gen-{next(_names)}.bin"
    url = server.add(name, data)
    kind, chunk, delay = transport
    if kind == "chunked" and chunk < 4096:  # keep it well within the deadline on a busy machine
        data, delay = data[: chunk * 200], 0.0  # at most 200 chunks, no pause between them
        url = server.add(name, data)
    for fault, value in steps:
        if fault == "status":
            server.fail(name, status=value)
        elif fault == "stall":
            server.stall(name, at=value, seconds=TIMEOUT * 3)
        else:
            getattr(server, fault)(name, at=value)
    if no_range:
        server.no_range(name)
    if kind == "chunked":
        server.chunked(name, chunk=chunk, delay=delay)
    elif kind == "no_length":
        server.no_length(name)
    elif chunk != 65536:
        server.slow(name, delay=0.0, chunk=chunk)
    started = time.monotonic()
    try:
        result = fetch_url(url, sha256=sha256_hex(data))
    except FetchError as exc:
        result = exc
    elapsed = time.monotonic() - started
    assert elapsed < DEADLINE + TIMEOUT + 1.0, f"{elapsed:.2f} s"
    if isinstance(result, FetchError):
        assert str(result).startswith(url) or name in str(result), str(result)
        assert "Traceback" not in str(result)
        assert not (cache.weights_dir() / cache.cache_key(url, name)).exists()
        statuses_only = all(fault == "status" and value != 404 for fault, value in steps)
        assert not (statuses_only and len(steps) <= RETRIES), f"{steps}: retries should have outlasted these"
        if steps and steps[0] == ("status", 404):
            assert "HTTP 404" in str(result)
    else:
        assert result.path.read_bytes() == data and result.sha256 == sha256_hex(data)
        assert not (steps and steps[0] == ("status", 404))
    assert len(server.requests_for(name)) <= 2 * (1 + 4 * RETRIES)


@pytest.fixture(scope="module")
def fault_server():
    """One server for every generated example (each fetches a file of its own)."""
    with FileServer() as server:
        yield server


@pytest.fixture
def generated_settings(monkeypatch):
    monkeypatch.setenv("ZOO_FETCH_TIMEOUT", str(TIMEOUT))
    monkeypatch.setenv("ZOO_FETCH_RETRIES", str(RETRIES))
    monkeypatch.setenv("ZOO_FETCH_DEADLINE", str(DEADLINE))


EXAMPLE = (st.integers(1, len(DATA)), faults, st.booleans(), transports)


@settings(max_examples=60, deadline=None)  # wall time is asserted per example, against the fetch's own deadline
@given(*EXAMPLE)
def test_generated_faults_end_with_the_file_or_a_clear_error_in_time(
    fault_server, generated_settings, size, steps, no_range, transport
):
    _check_one(fault_server, size, steps, no_range, transport)


@pytest.mark.slow
@settings(max_examples=250, deadline=None)
@given(*EXAMPLE)
def test_generated_faults_many_more(fault_server, generated_settings, size, steps, no_range, transport):
    _check_one(fault_server, size, steps, no_range, transport)
