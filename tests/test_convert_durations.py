"""Longest first: the order a batch dispatches its models in, from the seconds each took last time."""

from __future__ import annotations

import json
import math
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from zoo.converting import ExportOptions, convert, durations
from zoo.converting.planning import ConvertTask


def task(name: str, device: str = "cpu") -> ConvertTask:
    return ConvertTask(name, f"/out/{name}.onnx", ExportOptions(device=device), {}, "f")


@given(
    st.lists(st.sampled_from("abcdefgh"), unique=True),
    st.dictionaries(st.sampled_from("abcdefghxyz"), st.floats(0, 1e4) | st.integers(0, 10**6)),
)
def test_unknown_models_keep_their_order_ahead_of_known_ones_sorted_longest_first(names, seconds):
    tasks = [task(n) for n in names]
    known = {f"cpu {n}": float(s) for n, s in seconds.items()}
    ordered = durations.longest_first(tasks, known)
    assert sorted(t.name for t in ordered) == sorted(names)  # a permutation: nothing lost or repeated
    unknown = [t.name for t in tasks if durations.key(t) not in known]
    assert [t.name for t in ordered[: len(unknown)]] == unknown
    timed = [known[durations.key(t)] for t in ordered[len(unknown) :]]
    assert timed == sorted(timed, reverse=True)
    for first, second in pairwise(ordered[len(unknown) :]):
        if known[durations.key(first)] == known[durations.key(second)]:  # ties keep the given order
            assert names.index(first.name) < names.index(second.name)


def test_a_duration_is_per_device():
    known = {"cuda b": 50.0, "cpu a": 1.0, "cpu b": 2.0}
    assert [t.name for t in durations.longest_first([task("a"), task("b")], known)] == ["b", "a"]
    on_cuda = durations.longest_first([task("a", "cuda"), task("b", "cuda")], known)
    assert [t.name for t in on_cuda] == ["a", "b"]  # a unknown on CUDA: first


HOSTILE = [
    b"not json",
    b"[1, 2]",
    json.dumps({"version": 2, "seconds": {"cpu a": 1}}).encode(),
    json.dumps({"version": 1, "seconds": [1, 2]}).encode(),
    json.dumps({"version": 1}).encode(),
    b"\x00\xff\xfe",  # not UTF-8
]


def test_a_file_that_is_not_zoos_format_is_ignored(tmp_path):
    path = tmp_path / "d.json"
    for text in HOSTILE:
        path.write_bytes(text)
        assert durations.load(path) == {}, text
    values = {
        "cpu ok": 2.5,
        "cpu int": 3,
        "cpu nan": math.nan,
        "cpu inf": math.inf,
        "cpu neg": -1.0,
        "cpu bool": True,
        "cpu str": "9",
        "cpu none": None,
        "cpu list": [1],
    }
    path.write_text(json.dumps({"version": 1, "seconds": values}))  # json writes NaN and Infinity
    assert durations.load(path) == {"cpu ok": 2.5, "cpu int": 3.0}
    assert durations.load(tmp_path / "missing.json") == {}


def test_record_merges_the_newest_seconds_and_skips_rows_that_say_nothing(tmp_path):
    path = tmp_path / "home" / "d.json"
    tasks = [task("a"), task("b"), task("c")]
    durations.record([{"name": "a", "wall_seconds": 4.0}, {"name": "b", "wall_seconds": 1.0}], tasks, path)
    rows = [
        {"name": "b", "wall_seconds": 7.5},  # newer: replaces 1.0
        {"name": "c", "wall_seconds": 0.0},  # its worker did not start
        {"name": "z", "wall_seconds": 3.0},  # not a task of this batch
        {"name": "a", "wall_seconds": math.nan},
        {"name": "a"},
    ]
    durations.record(rows, tasks, path)
    assert durations.load(path) == {"cpu a": 4.0, "cpu b": 7.5}
    assert [t.name for t in durations.longest_first(tasks, durations.load(path))] == ["c", "b", "a"]


def test_record_keeps_only_the_newest_entries(tmp_path, monkeypatch):
    monkeypatch.setattr(durations, "MAX_ENTRIES", 3)
    path = tmp_path / "d.json"
    tasks = [task(n) for n in "abcde"]
    for n in "abcde":
        durations.record([{"name": n, "wall_seconds": 1.0}], tasks, path)
    assert list(durations.load(path)) == ["cpu c", "cpu d", "cpu e"]


def test_a_home_that_cannot_be_written_changes_only_the_order(tmp_path):
    home = tmp_path / "home"
    home.write_text("a file where the folder should be")
    durations.record([{"name": "a", "wall_seconds": 1.0}], [task("a")], home / "d.json")  # no exception
    assert home.read_text() == "a file where the folder should be"
    assert durations.load(home / "d.json") == {}


def test_a_second_batch_dispatches_the_model_that_took_longest_first(convtest, tmp_path):
    options = ExportOptions(weights="none", input_shape=(1, 3, 16, 16), verify=False)
    first = convert(["convtest:tiny_*"], tmp_path / "one", options=options, jobs=1, timeout=120)
    names = [row["name"] for row in first.rows]  # one job: rows in dispatch order
    assert names == sorted(names)  # nothing known yet: the selection's order
    recorded = durations.load()
    assert set(recorded) == {f"cpu {n}" for n in names} and all(s > 0 for s in recorded.values())
    slowest = {f"cpu {n}": float(i) for i, n in enumerate(names)}  # say the last took longest
    durations.durations_path().write_text(json.dumps({"version": 1, "seconds": slowest}))
    second = convert(["convtest:tiny_*"], tmp_path / "two", options=options, jobs=1, timeout=120)
    assert [row["name"] for row in second.rows] == names[::-1]
