"""Fetching across processes: 8 at once download once, a killed download resumes, Ctrl-C leaves no broken file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from http_server import http_server  # noqa: F401 - the fixture
from weights_fixtures import sha256_hex

from zoo.weights import cache
from zoo.weights.fetching import fetch_url

FETCH = "import sys, zoo; r = zoo.fetch_url(sys.argv[1], sha256=sys.argv[2]); print(r.path, r.sha256, r.source)"


def _payload(size: int) -> bytes:
    return os.urandom(size)


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.02)


def test_eight_processes_fetching_one_file_download_it_once(http_server):  # noqa: F811
    data = _payload(2 << 20)
    url = http_server.add("shared.bin", data)
    http_server.slow("shared.bin", delay=0.01)  # ~0.3 s of transfer: the processes overlap
    digest = sha256_hex(data)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", FETCH, url, digest], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 8, [err for _, err in outputs]
    lines = [out.split() for out, _ in outputs]
    assert len({line[0] for line in lines}) == 1
    assert {line[1] for line in lines} == {digest}
    assert sorted(line[2] for line in lines).count(url) == 1  # one downloaded, seven found it in the cache
    assert len(http_server.requests_for("shared.bin")) == 1
    assert open(lines[0][0], "rb").read() == data


def _start_slow_fetch(http_server, name: str, data: bytes, command: list[str]):  # noqa: F811
    http_server.add(name, data)
    http_server.slow(name, delay=0.02)  # 64 KiB per 20 ms: ~6 s for the whole file
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: any(p.stat().st_size > 512 << 10 for p in cache.weights_dir().glob(f"*/{name}.part")))
    return process


def test_a_killed_download_resumes_with_range_and_its_lock_is_released(http_server):  # noqa: F811
    data = _payload(20 << 20)
    url = http_server.url("killed.bin")
    process = _start_slow_fetch(http_server, "killed.bin", data, [sys.executable, "-c", FETCH, url, sha256_hex(data)])
    process.kill()
    process.wait()
    (part,) = cache.weights_dir().glob("*/killed.bin.part")
    done = part.stat().st_size
    assert 0 < done < len(data)
    assert not part.with_name("killed.bin").exists()
    http_server.clear_faults()
    result = fetch_url(url, sha256=sha256_hex(data))  # would block forever if the dead process kept the lock
    assert result.path.read_bytes() == data
    last = http_server.requests_for("killed.bin")[-1]
    assert last.status == 206 and last.range == f"bytes={done}-" and last.sent == len(data) - done


def test_ctrl_c_leaves_no_broken_file_in_the_cache(http_server):  # noqa: F811
    data = _payload(20 << 20)
    url = http_server.url("interrupted.bin")
    command = [sys.executable, "-m", "zoo", "fetch", url, "--sha256", sha256_hex(data)]
    process = _start_slow_fetch(http_server, "interrupted.bin", data, command)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "interrupted" in err
    cached = [p for p in cache.weights_dir().rglob("interrupted.bin*") if not p.name.endswith(".part")]
    assert cached == []
    assert cache.cached_files() == []
    http_server.clear_faults()
    assert fetch_url(url, sha256=sha256_hex(data)).path.read_bytes() == data
