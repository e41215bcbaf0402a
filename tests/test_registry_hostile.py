"""Hostile registry files: whatever the TOML holds, the reader returns entries or a RegistryFileError naming the
file, the entry and the field; never a traceback, never a name that leads out of the cache or an output folder."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zoo.cli.app import app
from zoo.converting.planning import output_path
from zoo.errors import RegistryFileError
from zoo.registry import catalogues
from zoo.registry.records import TASKS
from zoo.registry.registry_file import _extra_fields, parse_registry, read_registry_file
from zoo.weights import cache

# --- a tiny TOML writer (tomli_w is not a dependency): every value inline, every key quoted ----------------------


def toml_string(text: str) -> str:
    escaped = "".join(
        "\\\\" if c == "\\" else '\\"' if c == '"' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or c == "\x7f" else c
        for c in text
    )
    return f'"{escaped}"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(data: dict) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in data.items())


# --- strategies: near-valid documents, each field either good or anything at all -------------------------------

CHARS = st.characters(blacklist_categories=("Cs",))
HOSTILE_NAMES = ["..", ".", "", "a/b", "..\\x", "../../escape.pth", "%2e%2e", "..%2fx", "C:", "x\0y", "é" * 200]
HOSTILE_URLS = ["javascript:alert(1)", "data:text/plain,x", "ftp:///x.pth", "no-scheme.pth", "/etc/passwd"]
HOSTILE_URLS += ["C:\\w.pth", "http:///x.pth", "http://h:99999/x.pth", "http://h/a b.pth", "http://[::1/x.pth"]
HOSTILE_URLS += ["https://h/x/..%2f..%2fescape.pth", "https://h/%2e%2e", "file:///tmp/x.pth", "hf-hub:timm/m"]
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(CHARS, max_size=16),
    st.sampled_from(HOSTILE_NAMES + HOSTILE_URLS),
    st.dates(),
    st.datetimes(),
)
ANY = st.recursive(
    SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(CHARS, max_size=6), kids, max_size=3),
    max_leaves=8,
)
PLAIN = st.sampled_from(["tinynet", "net_2", "x-y", "v1", "in1k"])
NAMES = st.one_of(PLAIN, PLAIN, PLAIN, st.sampled_from(HOSTILE_NAMES), st.text(CHARS, max_size=12))
URLS = st.one_of(
    st.sampled_from(["https://example.com/tinynet-0123abcd.pth", "https://h/m/model.safetensors"] + HOSTILE_URLS),
    st.builds(lambda name: f"https://example.com/w/{name}", NAMES),
)


def field(good):
    return st.one_of(*[good] * 6, ANY)  # mostly good, so that the reader gets past the first fields


def well_typed(good):
    return good


def with_extra(base):
    extra = st.dictionaries(st.sampled_from(["colour", "plugin", "Tag", "weights"]), ANY, max_size=1)
    return st.one_of(base, base, st.builds(lambda table, more: {**table, **more}, base, extra))


def weights_tables(field):
    return with_extra(
        st.fixed_dictionaries(
            {"tag": field(NAMES), "url": field(URLS)},
            optional={
                "file_name": field(NAMES),
                "mirrors": field(st.lists(URLS, max_size=2)),
                "sha256": field(st.sampled_from(["ab" * 32, "AB" * 32, "ab" * 31, "zz" * 32])),
                "hash_prefix": field(st.sampled_from(["0123abcd", "", "xyz", "0" * 65])),
                "size": field(st.integers(-5, 10**12)),
                "format": field(st.sampled_from(["pth", "safetensors", "onnx"])),
                "num_classes": field(st.integers(-1, 1000)),
                "input_size": field(st.lists(st.integers(-1, 512), max_size=5)),
                "mean": field(st.lists(st.floats(0, 1), max_size=3)),
                "top1": field(st.floats(0, 100)),
                "aliases": field(st.lists(NAMES, max_size=2)),
                "meta": field(st.dictionaries(st.text(CHARS, max_size=6), ANY, max_size=3)),
                "builder_kwargs": field(st.dictionaries(st.text(CHARS, max_size=6), ANY, max_size=2)),
            },
        )
    )


def model_tables(field):
    return with_extra(
        st.fixed_dictionaries(
            {"name": field(NAMES), "family": field(NAMES), "builder": field(st.just("my_models:TinyNet"))},
            optional={
                "weights": field(st.lists(weights_tables(field), max_size=3)),
                "aliases": field(st.lists(NAMES, max_size=2)),
                "tags": field(st.lists(st.sampled_from(["classification", *TASKS]), max_size=2)),
                "task": field(st.sampled_from([*TASKS, "poetry"])),
                "remap": field(st.text(CHARS, max_size=8)),
                "description": field(st.text(CHARS, max_size=20)),
                "builder_kwargs": field(st.dictionaries(st.text(CHARS, max_size=6), ANY, max_size=2)),
            },
        )
    )


DOCUMENTS = st.one_of(
    # any type in any field
    st.fixed_dictionaries({}, optional={"format": field(st.just(1)), "models": field(st.lists(model_tables(field)))}),
    # every field of its type, with hostile names, URLs and values
    st.fixed_dictionaries({"models": st.lists(model_tables(well_typed), min_size=1, max_size=3)}),
    # any document at all
    st.dictionaries(st.text(CHARS, max_size=8), ANY, max_size=3),
)
_files = itertools.count()


def check_accepted(entries, tmp_path: Path) -> None:
    """What the reader accepted leads nowhere outside the cache or the convert output folder."""
    root = cache.weights_dir().resolve()
    for entry in entries:
        assert tmp_path.resolve() in output_path(tmp_path, entry).resolve().parents
        for weights in entry.weights:
            key = cache.cache_key(weights.url, weights.file_name)
            for path in (cache.file_path(key), cache.part_path(key), cache.meta_path(key)):
                assert root in path.resolve().parents, (weights, path)


@settings(max_examples=200, deadline=2000)
@given(DOCUMENTS)
def test_any_generated_registry_file_gives_entries_or_a_registry_file_error(tmp_path, document):
    path = tmp_path / f"generated-{next(_files)}.toml"
    path.write_text(toml_document(document), encoding="utf-8")
    try:
        entries = read_registry_file(path, plugin="fuzz")
    except RegistryFileError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message
        event("refused")
        return
    event(f"accepted, {len(entries)} entries")
    check_accepted(entries, tmp_path)


PYTHON_ANY = st.recursive(
    st.one_of(SCALARS, st.none(), st.binary(max_size=4), st.sets(st.integers(), max_size=2)),
    lambda kids: st.lists(kids, max_size=3) | st.tuples(kids) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=2000)
@given(st.one_of(DOCUMENTS, PYTHON_ANY, st.fixed_dictionaries({"models": st.lists(PYTHON_ANY, max_size=2)})))
def test_parse_registry_on_any_python_data_raises_only_registry_file_errors(tmp_path, data):
    """What a plugin may hand to parse_registry (not only what TOML can say: None, bytes, sets, tuples)."""
    try:
        entries = parse_registry(data, source="plugin data", plugin="fuzz")
    except RegistryFileError as exc:
        assert str(exc).startswith("plugin data: ")
        return
    check_accepted(entries, tmp_path)


VALID_TEXT = toml_document(
    {
        "format": 1,
        "models": [
            {
                "name": "tinynet",
                "family": "mine",
                "builder": "my_models:TinyNet",
                "weights": [{"tag": "v1", "url": "https://example.com/tinynet-0123abcd.pth", "size": 10}],
            }
        ],
    }
)


@settings(max_examples=150, deadline=2000)
@given(st.integers(0, len(VALID_TEXT)), st.integers(0, 8), st.text(max_size=6))
def test_a_mangled_registry_file_gives_only_registry_file_errors(tmp_path, at, cut, insert):
    path = tmp_path / f"mangled-{next(_files)}.toml"
    path.write_text(VALID_TEXT[:at] + insert + VALID_TEXT[at + cut :], encoding="utf-8", errors="surrogatepass")
    try:
        check_accepted(read_registry_file(path, plugin="fuzz"), tmp_path)
    except RegistryFileError as exc:
        assert str(exc).startswith(f"{path}: ")


# --- explicit cases ------------------------------------------------------------------------------------------

BASE = """format = 1

[[models]]
name = "tinynet"
family = "mine"
builder = "my_models:TinyNet"

[[models.weights]]
tag = "v1"
url = "https://example.com/tinynet-0123abcd.pth"
file_name = "tinynet-0123abcd.pth"
mirrors = ["https://mirror.example/tinynet-0123abcd.pth"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"hostile-{next(_files)}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_base_case_is_accepted(tmp_path):
    (entry,) = read_registry_file(write(tmp_path, BASE), plugin="me")
    assert entry.weights[0].file_name == "tinynet-0123abcd.pth"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # names with separators or dot-dot
        ('name = "tinynet"', 'name = "a/b"', "models[0] (a/b): field 'name': 'a/b' contains '/'"),
        ('name = "tinynet"', 'name = "a\\\\b"', "field 'name': 'a\\\\b' contains '\\\\'"),
        ('name = "tinynet"', 'name = "a\\nb"', "models[0] ('a\\nb'): field 'name': 'a\\nb' contains the control"),
        ('family = "mine"', 'family = ".."', "field 'family': '..' is only dots"),
        ('family = "mine"', 'family = "../../up"', "field 'family': '../../up' contains '/'"),
        ('family = "mine"', 'family = "a:b"', "field 'family' must not contain ':'"),
        ('family = "mine"', 'family = "C:"', "field 'family' must not contain ':'"),
        ('tag = "v1"', 'tag = "a/b"', "weights[0]: field 'tag': 'a/b' contains '/'"),
        ('file_name = "tinynet-0123abcd.pth"', 'file_name = "../../escape.pth"', "field 'file_name': '../../escape"),
        ('file_name = "tinynet-0123abcd.pth"', 'file_name = "..%2fescape.pth"', "(decoded from '..%2fescape.pth')"),
        ('file_name = "tinynet-0123abcd.pth"', 'file_name = "%252e%252e"', "field 'file_name': '..' (decoded"),
        ('file_name = "tinynet-0123abcd.pth"', 'file_name = "a\\u0000b"', "field 'file_name': 'a\\x00b' contains NUL"),
        ('file_name = "tinynet-0123abcd.pth"', 'file_name = "/etc/passwd"', "is an absolute path"),
        ('file_name = "tinynet-0123abcd.pth"\n', "", None),  # the URL's own file name is fine
        # the URL's last component, when it gives the file name
        (
            'url = "https://example.com/tinynet-0123abcd.pth"\nfile_name = "tinynet-0123abcd.pth"',
            'url = "https://example.com/x/..%2f..%2fescape.pth"',
            "weights[0]: field 'url': file name of https://example.com/x/..%2f..%2fescape.pth: '../../escape.pth'",
        ),
        # odd schemes
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "javascript:alert(1)"', "is a javascript: URL"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "data:,x"', "is a data: URL"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "tinynet.pth"', "has no scheme"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "../tinynet.pth"', "has no scheme"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "/etc/passwd"', "has no scheme"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "C:\\\\w\\\\t.pth"', "looks like a Windows path"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "ftp:///t.pth"', "has no host"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "https:/t.pth"', "has no host"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "http://h:99999/t.pth"', "is not a valid URL"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "http://[::1/t.pth"', "is not a valid URL"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "https://h/a b.pth"', "contains spaces"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = "https://h/a\\nb.pth"', "control characters"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', 'url = ""', "has no scheme"),
        ('mirrors = ["https://mirror', 'mirrors = ["javascript:x", "https://mirror', "field 'mirrors[0]'"),
        ('mirrors = ["https://mirror.example/tinynet-0123abcd.pth"]', "mirrors = [3]", "list of strings"),
        ("mirrors = [", "mirrors = 3 #", "field 'mirrors' must be list"),
        # wrong types and missing fields
        ('name = "tinynet"', "name = 3", "field 'name' must be str, got 3"),
        ('name = "tinynet"', "name = true", "field 'name' must be str, got True"),
        ('family = "mine"', "family = []", "field 'family' must be str"),
        ('tag = "v1"', "tag = 1979-05-27", "field 'tag' must be str, got datetime.date(1979, 5, 27)"),
        ('tag = "v1"', 'tag = {a = "b"}', "field 'tag' must be str"),
        ('url = "https://example.com/tinynet-0123abcd.pth"', "url = 1.5", "field 'url' must be str"),
        ('file_name = "tinynet-0123abcd.pth"', "file_name = false", "field 'file_name' must be str"),
        ('tag = "v1"', 'tag = "v1"\nsize = true', "field 'size' must be int, got True"),
        ('tag = "v1"', 'tag = "v1"\nsize = 1.5', "field 'size' must be int"),
        ('tag = "v1"', 'tag = "v1"\nsize = -1', "field 'size' must be positive"),
        ('tag = "v1"', 'tag = "v1"\ninput_size = [3, true, 4]', "must be a list of numbers"),
        ('tag = "v1"', 'tag = "v1"\nmean = [nan, "x"]', "must be a list of numbers"),
        ('tag = "v1"', 'tag = "v1"\nmeta = "x"', "field 'meta' must be dict"),
        ('tag = "v1"', 'tag = "v1"\nhash_prefix = ""', "'hash_prefix' must be 6 to 64 hex digits"),
        ('tag = "v1"', 'tag = "v1"\nhash_prefix = "01234"', "'hash_prefix' must be 6 to 64 hex digits"),
        ('tag = "v1"', 'tag = "v1"\nsha256 = "' + "g" * 64 + '"', "'sha256' must be 64 hex digits"),
        ('tag = "v1"', 'tag = "v1"\nplugin = "someone-else"', "unknown field 'plugin'"),
        ('name = "tinynet"', 'name = "tinynet"\nplugin = "someone-else"', "unknown field 'plugin'"),
        ('tag = "v1"\n', "", "weights[0]: missing required field 'tag'"),
        ('url = "https://example.com/tinynet-0123abcd.pth"\n', "", "missing required field 'url'"),
        ('builder = "my_models:TinyNet"\n', "", "missing required field 'builder'"),
        ('family = "mine"', 'family = "  "', "field 'family' is empty"),
        ("[[models.weights]]", "[models.weights]", "field 'weights' must be list"),
        ("[[models.weights]]", "weights = [1]\n[[models.weights]]", "not valid TOML"),  # weights defined twice
        ("format = 1", "format = true", "field 'format' is True"),
        ("format = 1", "format = 1.0", "field 'format' is 1.0"),
        ("format = 1", 'format = "1"', "field 'format' is '1'"),
        ("format = 1", "models = 3", "not valid TOML"),  # `models` defined twice
        ("format = 1", "format = 1\nmodels = 3\n#", "not valid TOML"),
    ],
)
def test_each_hostile_field_is_refused_naming_file_entry_and_field(tmp_path, old, new, expected):
    assert old in BASE
    path = write(tmp_path, BASE.replace(old, new, 1))
    if expected is None:
        check_accepted(read_registry_file(path, plugin="me"), tmp_path)
        return
    with pytest.raises(RegistryFileError) as info:
        read_registry_file(path, plugin="me")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and expected in message, message
    if "models[0]" in message or "weights[0]" in message:
        assert message.startswith(f"{path}: models[0]")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models = 3", "'models' must be an array of tables"),
        ('models = ["x"]', "models[0]: must be a table, got str"),
        ("models = [[]]", "models[0]: must be a table, got list"),
        ('[[models]]\nname = "a"\nfamily = "f"\nbuilder = "b"\nweights = [3]', "weights[0]: must be a table, got int"),
        ("a = " + "[" * 5000, "nested too deeply"),
        ("a = " + "{b = " * 5000, "nested too deeply"),
        ("\x00", "not valid TOML"),
    ],
)
def test_malformed_documents_are_refused(tmp_path, text, expected):
    with pytest.raises(RegistryFileError, match=expected.replace("[", "\\[")):
        read_registry_file(write(tmp_path, text), plugin="me")


def test_a_file_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[[models]]\nname = "caf\xe9"\n')
    with pytest.raises(RegistryFileError, match="cannot read registry file"):
        read_registry_file(path, plugin="me")


def test_parse_registry_refuses_data_that_is_not_a_table():
    for data in (None, [], "format = 1", 3):
        with pytest.raises(RegistryFileError, match="must be a TOML document"):
            parse_registry(data, source="plugin data", plugin="me")


def test_duplicated_names_and_tags_are_refused(tmp_path):
    model = BASE.split("format = 1")[1]
    with pytest.raises(RegistryFileError, match=r"models\[1\] \(tinynet\): field 'name': mine:tinynet is already"):
        read_registry_file(write(tmp_path, "format = 1\n" + model + model), plugin="me")
    weights = "[[models.weights]]" + BASE.split("[[models.weights]]")[1]
    with pytest.raises(RegistryFileError, match="tag 'v1' appears twice"):
        read_registry_file(write(tmp_path, BASE + weights), plugin="me")


def test_a_toml_date_in_meta_is_read_the_same_twice(tmp_path):
    """Dates have no JSON form: the file is then not cached as JSON, and the second read is the first."""
    path = write(tmp_path, BASE + "meta = { released = 2021-03-04, at = 1979-05-27T07:32:00 }\n")
    first = read_registry_file(path, plugin="me")
    catalogues.reset()
    from zoo.registry.registry_file import _read_toml

    _read_toml.cache_clear()
    second = read_registry_file(path, plugin="me")
    assert first == second and first[0].weights[0].meta["released"] == datetime.date(2021, 3, 4)


def test_the_json_cache_of_a_registry_file_is_written_inside_zoo_home(tmp_path):
    path = write(tmp_path, BASE)
    read_registry_file(path, plugin="me")
    home = cache.zoo_home().resolve()
    written = [p for p in (home / "registry-cache").iterdir()]
    assert written and all(home in p.resolve().parents for p in written)
    assert json.loads(written[0].read_text())["format"] == 1


def test_an_ftp_url_is_read_and_its_fetch_fails_naming_the_scheme(tmp_path, monkeypatch):
    """A scheme with a host is left to the weight sources plugins register; with none, fetch says so."""
    path = write(tmp_path, BASE.replace("https://example.com/", "ftp://files.example.com/"))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    catalogues.reset()
    result = CliRunner().invoke(app, ["fetch", "mine:tinynet"])
    assert result.exit_code == 5, result.output
    assert "no weight source for URL scheme 'ftp'" in result.output and "Traceback" not in result.output


def test_a_hostile_zoo_registry_file_fails_the_cli_with_one_line(tmp_path, monkeypatch):
    path = write(tmp_path, BASE.replace('file_name = "tinynet-0123abcd.pth"', 'file_name = "../../escape.pth"'))
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    catalogues.reset()
    result = CliRunner().invoke(app, ["fetch", "mine:tinynet"])
    assert result.exit_code == 3, result.output
    line = result.output.strip()
    assert line.startswith(f"Error: {path}: models[0] (tinynet) weights[0]: field 'file_name'") and "\n" not in line
    assert not list(tmp_path.parent.rglob("escape.pth"))


def test_fields_a_record_gains_are_read_with_the_type_its_annotation_says():
    """The catalogue may add fields to the records; the reader takes them, typed, without a change here."""

    @dataclasses.dataclass(frozen=True)
    class Later:
        tag: str
        revision: str | None = None
        sizes: tuple[int, ...] = ()
        labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
        score: float | None = None
        count: int = 0
        flag: bool = False
        plugin: str = ""

    extra = _extra_fields(Later, frozenset({"tag"}), ("plugin",))
    assert extra == {
        "revision": (str, False),
        "sizes": (list, False),
        "labels": (dict, False),
        "score": ((int, float), False),
        "count": (int, False),
        "flag": (bool, False),
    }
