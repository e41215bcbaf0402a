"""Hostile checkpoints: every damaged, lying or malicious file ends in one line naming the file, exit code 6.

The files are written byte by byte (struct, zipfile, pickle) the way an attacker or a broken disk would
leave them, not through torch.save alone. A malicious global is never executed: each case creates a marker
file when it runs, and the tests check the marker is absent (and, once, that trust_pickle really runs it,
so the check can fail).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import resource
import struct
import time
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zoo.cli.app import app
from zoo.errors import CheckpointError
from zoo.weights.loading import UnsafeCheckpointError, load_checkpoint

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "conv.weight": torch.randn(4, 3, 3, 3, generator=generator),
        "conv.bias": torch.randn(4, generator=generator),
    }


def saved(state: dict | None = None, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(state if state is not None else tensors(), buffer, **kwargs)
    return buffer.getvalue()


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def rezip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        warnings.simplefilter("ignore")  # "Duplicate name": the point of one case
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name), data)
    return path


def safetensors_bytes(header: dict, body: bytes, claimed_length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if claimed_length is None else claimed_length) + text + body


# --- a pickle with a malicious global nested inside a tensor rebuild -------------------------------------


class StoragePid:
    """Pickled as torch.save's persistent id for storage `key` (numel floats)."""

    def __init__(self, key: str, numel: int) -> None:
        self.key, self.numel = key, numel


class Call:
    """Pickled as a call of `function(*args)` (pickle's REDUCE): the shape of any malicious payload."""

    def __init__(self, function, *args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def payloads(marker: Path) -> dict[str, Call]:
    """Three globals that run code: each one creates `marker` if it is ever called."""
    return {
        "os.system": Call(os.system, f"touch {marker}"),
        "builtins.exec": Call(exec, f"open({str(marker)!r}, 'w').close()"),
        "posix.system": Call(__import__("posix").system, f"touch {marker}"),
    }


def malicious_pickle(payload: Call | None, where: str, numel: int = 4, legacy: bool = False) -> bytes:
    """An OrderedDict of tensors, as torch.save writes it, with `payload` nested `where`: in
    `_rebuild_tensor_v2`'s backward_hooks argument ("rebuild"), or as one value of the OrderedDict ("dict")."""

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, StoragePid):
                pid = ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
                return (*pid, None) if legacy else pid  # the legacy format adds view metadata
            return None

    def tensor(key: str, hooks) -> Call:
        args = (StoragePid(key, numel), 0, (numel,), (1,), False, hooks)
        return Call(torch._utils._rebuild_tensor_v2, *args)

    state = OrderedDict()
    state["a.weight"] = tensor("0", payload if where == "rebuild" else OrderedDict())
    state["a.bias"] = tensor("1", OrderedDict())
    if where == "dict":
        state["a.extra"] = payload
    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(state)
    return buffer.getvalue()


def zip_checkpoint(path: Path, data_pkl: bytes, numel: int = 4) -> Path:
    """torch.save's zip layout (version, byteorder, data/0, data/1) around a hand-made data.pkl."""
    floats = struct.pack(f"<{numel}f", *range(numel))
    members = [
        ("archive/data.pkl", data_pkl),
        ("archive/byteorder", b"little"),
        ("archive/data/0", floats),
        ("archive/data/1", floats),
        ("archive/version", b"3\n"),
    ]
    return rezip(path, members)


def legacy_checkpoint(path: Path, main_pickle: bytes, storages: dict[str, int], data_bytes: int | None = None) -> Path:
    """torch.save's legacy (non-zip) layout: magic, protocol, sys_info and main pickles, the storage keys, then
    each storage as an 8-byte element count and its bytes (`data_bytes` of them, to lie about sizes)."""
    parts = [pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2)]
    parts.append(pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {}}, 2))
    parts += [main_pickle, pickle.dumps(list(storages), 2)]
    for numel in storages.values():
        size = numel * 4 if data_bytes is None else data_bytes
        parts += [struct.pack("<q", numel), b"\0" * size]
    path.write_bytes(b"".join(parts))
    return path


# --- the cases -------------------------------------------------------------------------------------------


def damaged_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Every damaged or lying file: name -> (path, a phrase the error must contain)."""
    good_zip = saved()
    good_legacy = saved(_use_new_zipfile_serialization=False)
    members = zip_members(good_zip)
    random = bytes((i * 7919 + 13) % 251 for i in range(4096))  # fixed "random" bytes
    small = safetensors_bytes({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 16)
    cases = {
        "empty.pth": (b"", "empty"),
        "empty.safetensors": (b"", "empty"),
        "random.pth": (random, "not a PyTorch checkpoint"),
        "random.safetensors": (random, "not a .safetensors file"),
        "random.bin": (b"\x80\x02" + random, "damaged or cut short"),
        "half.pth": (good_zip[: len(good_zip) // 2], "truncated zip archive"),
        "legacy-half.pth": (good_legacy[: len(good_legacy) // 2], "cut short"),
        "text.pth": (b"PK\x03\x04 this is not really a zip", "zip archive"),
        "plain-pickle.pth": (pickle.dumps({"a": 1}, 2), "not one torch.save wrote"),
        "header-length.safetensors": (struct.pack("<Q", 10**12) + small[8:], "header too large"),
        "huge-tensor.safetensors": (
            safetensors_bytes({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 16]}}, b"\0" * 16),
            "invalid shape",
        ),
        "overflow.safetensors": (
            safetensors_bytes({"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]}}, b"\0" * 16),
            "overflow",
        ),
        "overlap.safetensors": (
            safetensors_bytes(
                {
                    "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                    "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                },
                b"\0" * 16,
            ),
            "invalid offset",
        ),
        "beyond.safetensors": (
            safetensors_bytes({"a": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 16),
            "not fully covered",
        ),
    }
    result = {}
    for name, (data, phrase) in cases.items():
        (folder / name).write_bytes(data)
        result[name] = (folder / name, phrase)
    odd = {
        "traversal.pth": ([("../../x" if n.endswith("data.pkl") else n, b) for n, b in members], "'../../x'"),
        "absolute.pth": ([(f"/{n}", b) for n, b in members], "absolute"),
        "backslash.pth": ([(n.replace("/", "\\", 1), b) for n, b in members], "backslash"),
        "duplicate.pth": (members + [members[0]], "twice"),
        "no-data-pkl.pth": ([(n, b) for n, b in members if not n.endswith("data.pkl")], "data.pkl missing"),
        "two-roots.pth": (members + [("other/data.pkl", members[0][1])], "one top-level folder"),
        # zoo's checks pass, torch's reader refuses: its error becomes the same one line
        "no-version.pth": ([(n, b) for n, b in members if not n.endswith("/version")], "cannot read checkpoint"),
    }
    for name, (entries, phrase) in odd.items():
        result[name] = (rezip(folder / name, entries), phrase)
    lying = folder / "lying-numel.pth"  # data.pkl claims 1,000,000 floats; the archive holds 4
    lying_pkl = malicious_pickle(None, "nowhere", numel=10**6)
    result["lying-numel.pth"] = (zip_checkpoint(lying, lying_pkl), "claims 4,000,000 bytes")
    huge = folder / "legacy-huge.pth"  # a legacy storage claiming 10^12 floats: never allocated
    main = malicious_pickle(None, "nowhere", numel=10**12, legacy=True)
    result["legacy-huge.pth"] = (legacy_checkpoint(huge, main, {"0": 10**12, "1": 10**12}, data_bytes=16), "claim")
    return result


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return damaged_files(tmp_path_factory.mktemp("hostile"))


def test_each_damaged_file_is_one_checkpoint_error_naming_the_file(hostile):
    for name, (path, phrase) in hostile.items():
        start = time.perf_counter()
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(path)
        message = str(error.value)
        assert str(path) in message and phrase in message, (name, message)
        assert "\n" not in message and not isinstance(error.value, UnsafeCheckpointError), (name, message)
        assert time.perf_counter() - start < 5, name


def test_claimed_sizes_are_never_allocated(hostile):
    """A legacy file claiming two storages of 10^12 floats (8 TB) and a zip claiming 10^6 floats: refused from
    the claim, before torch allocates anything (peak memory grows by far less than either claim)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in ("legacy-huge.pth", "lying-numel.pth"):
        with pytest.raises(CheckpointError, match="claim"):
            load_checkpoint(hostile[name][0])
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB


@pytest.mark.parametrize("command", ["inspect", "adapt", "import"])
def test_the_cli_says_one_line_and_exits_6(hostile, command, tmp_path):
    runner = CliRunner()
    for name in ("empty.pth", "half.pth", "random.pth", "traversal.pth", "header-length.safetensors"):
        path = hostile[name][0]
        args = {
            "inspect": ["inspect", str(path)],
            "adapt": ["adapt", "resnet18", "--from", str(path), "-o", str(tmp_path / "out.safetensors")],
            "import": ["import", str(path)],
        }[command]
        result = runner.invoke(app, args)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 6, (name, result.output)
        assert len(lines) == 1 and lines[0].startswith("Error: ") and str(path) in lines[0], (name, result.output)
        assert "Traceback" not in result.output and not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("where", ["rebuild", "dict"])
@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_malicious_global_nested_in_a_tensor_rebuild_is_refused_and_never_runs(tmp_path, where, layout):
    marker = tmp_path / "pwned"
    for number, (name, payload) in enumerate(payloads(marker).items()):
        data_pkl = malicious_pickle(payload, where, legacy=layout == "legacy")
        path = tmp_path / f"evil{number}.pth"
        if layout == "zip":
            zip_checkpoint(path, data_pkl)
        else:
            legacy_checkpoint(path, data_pkl, {"0": 4, "1": 4})
        with pytest.raises(UnsafeCheckpointError) as error:
            load_checkpoint(path)
        module, _, function = name.rpartition(".")
        assert function in str(error.value) and "nothing was executed" in str(error.value), str(error.value)
        result = CliRunner().invoke(app, ["inspect", str(path)])
        assert result.exit_code == 6 and "refused to unpickle" in result.output and str(path) in result.output
        assert not marker.exists(), name
    # The opt-in really unpickles: the same kind of file does run its payload (so the check above can fail).
    try:
        load_checkpoint(path, trust_pickle=True)
    except CheckpointError:
        pass  # whatever the rebuild makes of the payload's result, the payload has run
    assert marker.exists()


def test_torch_weights_only_would_also_refuse_it(tmp_path):
    """zoo refuses before torch reads the pickle; torch's weights-only reader is the second line and agrees."""
    marker = tmp_path / "pwned"
    path = zip_checkpoint(tmp_path / "evil.pth", malicious_pickle(payloads(marker)["os.system"], "rebuild"))
    with pytest.raises(pickle.UnpicklingError, match="system"):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_hand_made_layouts_are_what_torch_reads(tmp_path):
    """The byte layouts above are real: with a harmless payload, torch and zoo read both files."""
    for path in (
        zip_checkpoint(tmp_path / "ok.pth", malicious_pickle(None, "nowhere")),
        legacy_checkpoint(tmp_path / "ok-legacy.pth", malicious_pickle(None, "nowhere", legacy=True), {"0": 4, "1": 4}),
    ):
        state = load_checkpoint(path).state_dict
        assert list(state) == ["a.weight", "a.bias"] and state["a.weight"].shape == (4,)
        assert list(torch.load(path, weights_only=True)) == ["a.weight", "a.bias"]


def test_python2_names_of_protocol_2_pickles_are_read_as_torch_reads_them(tmp_path):
    """torch.save writes protocol 2, where a set is `__builtin__.set`: allowed, as torch allows `builtins.set`."""
    path = tmp_path / "with-a-set.pth"
    torch.save({"state_dict": tensors(), "classes": {"cat", "dog"}}, path)
    assert list(load_checkpoint(path).state_dict) == ["conv.weight", "conv.bias"]


def test_timm_train_args_namespace_is_allowed_but_nothing_else_new(tmp_path):
    """timm's train script saves its argparse.Namespace as `args`: zoo reads it without --trust-pickle."""
    import argparse

    path = tmp_path / "checkpoint-3.pth.tar"
    torch.save({"epoch": 3, "arch": "x", "state_dict": tensors(), "args": argparse.Namespace(lr=0.1)}, path)
    assert list(load_checkpoint(path).state_dict) == ["conv.weight", "conv.bias"]
    torch.save({"state_dict": tensors(), "args": argparse.FileType("r")}, path)
    with pytest.raises(UnsafeCheckpointError, match="argparse.FileType"):
        load_checkpoint(path)


@pytest.fixture(scope="module")
def genuine() -> dict[str, bytes]:
    """Small real checkpoints in each format, for the fuzzer to damage."""
    from safetensors.torch import save as save_safetensors

    return {
        "zip.pth": saved(),
        "legacy.pth": saved(_use_new_zipfile_serialization=False),
        "w.safetensors": save_safetensors(tensors()),
    }


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["zip.pth", "legacy.pth", "w.safetensors"]),
    cut=st.floats(0, 1),
    changes=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
)
def test_damaged_bytes_load_or_fail_with_zoos_error_only(genuine, tmp_path_factory, kind, cut, changes):
    """Any truncation point and any overwritten bytes: a Checkpoint, or a CheckpointError; never anything else."""
    data = bytearray(genuine[kind][: max(1, int(len(genuine[kind]) * cut))] if cut < 1 else genuine[kind])
    for where, value in changes:
        data[min(int(where * len(data)), len(data) - 1)] = value
    path = tmp_path_factory.mktemp("fuzz") / kind
    path.write_bytes(bytes(data))
    start = time.perf_counter()
    try:
        load_checkpoint(path)
    except CheckpointError as error:
        assert str(path) in str(error) and "\n" not in str(error)
    assert time.perf_counter() - start < 5
