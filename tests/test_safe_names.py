"""One function makes outside names safe (zoo.paths.safe_component), and nothing zoo writes leaves its root.

The end-to-end case is the one found by hand: `zoo fetch 'http://127.0.0.1:PORT/plain/..%2f..%2f..%2fescape.bin'`
wrote `escape.bin` three folders above the cache.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from http_server import http_server  # noqa: F401 - the fixture
from hypothesis import example, given, settings
from hypothesis import strategies as st
from weights_fixtures import hashed_name, registry_entry, sha256_hex, write_registry

import zoo
from zoo.converting.planning import output_path
from zoo.errors import UnsafeNameError, UserInputError, ZooError
from zoo.paths import MAX_NAME_BYTES, inside, safe_component, safe_relative
from zoo.registry import catalogues
from zoo.registry.records import ModelEntry, WeightSet, file_name_from_url
from zoo.weights import cache
from zoo.weights.fetching import fetch, fetch_url, import_file
from zoo.weights.mirror_sync import read_index

TRAVERSAL = "plain/..%2f..%2f..%2fescape.bin"


# --- the refusal list, one case each ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        (".", "only dots and spaces"),
        ("..", "only dots and spaces"),
        ("...", "only dots and spaces"),
        (".. ", "only dots and spaces"),  # Windows drops the trailing space: `..`
        ("a/b", "contains '/'"),
        ("../escape.bin", "contains '/'"),
        ("a\\b", "contains '\\\\'"),
        ("..\\..\\escape.bin", "contains '\\\\'"),
        ("/etc/passwd", "is an absolute path"),
        ("\\\\server\\share", "is an absolute path"),
        ("C:", "drive letter"),
        ("c:escape.bin", "drive letter"),
        ("a\0b", "contains NUL"),
        ("a\nb", "control character '\\n'"),
        ("\x1b[31mred", "control character '\\x1b'"),
        ("a\x7fb", "control character '\\x7f'"),
        ("a\x85b", "control character '\\x85'"),  # a C1 control
        ("x" * (MAX_NAME_BYTES + 1), f"over the {MAX_NAME_BYTES}"),
        ("é" * 128, "256 bytes of UTF-8"),  # 128 characters, but 256 bytes
        ("\ud800.pth", "not valid Unicode"),
        ("%2e%2e", "'..' (decoded from '%2e%2e')"),
        ("%2E%2E", "only dots and spaces"),
        ("..%2f..%2fescape.bin", "'../../escape.bin' (decoded"),
        ("..%5cescape.bin", "contains '\\\\'"),
        ("%2fetc%2fpasswd", "is an absolute path"),
        ("%252e%252e", "'..' (decoded from '%252e%252e')"),  # double encoding cannot sneak through
        ("..%252f..%252fescape.bin", "contains '/'"),
        ("a%00b", "contains NUL"),
        ("．．", "once Unicode-normalised"),  # fullwidth full stops: NFKC makes them '..'
        ("a／b", "once Unicode-normalised"),  # fullwidth solidus
    ],
)
def test_each_unsafe_name_is_refused_with_what_was_wrong(name, problem):
    with pytest.raises(UnsafeNameError) as info:
        safe_component(name, "file name of the test")
    message = str(info.value)
    assert problem in message and message.startswith("file name of the test: ")
    assert "\n" not in message.replace("\\n", "")  # one line, whatever the name holds
    assert isinstance(info.value, ZooError) and info.value.exit_code == 2


@pytest.mark.parametrize("value", [None, 3, b"model.pth", ["a"], Path("a")])
def test_a_name_that_is_not_a_string_is_refused(value):
    with pytest.raises(UnsafeNameError, match="must be a string"):
        safe_component(value)


@pytest.mark.parametrize(
    "name",
    [
        "resnet18-f37072fd.pth",
        "model.safetensors",
        "..hidden",
        "a..b",
        "100%.pth",  # a '%' that is no escape
        "%zz.pth",
        "model%2Bv2.pth",  # decodes to a '+': harmless
        "a b.pth",
        "ünïcödé-模型.pth",
        "x" * MAX_NAME_BYTES,
        "C",
        "file:name",  # ':' after the first character is no drive
    ],
)
def test_plain_names_are_returned_unchanged(name):
    assert safe_component(name) == name


def _stays_inside(root: Path, name: str) -> None:
    """`name` joined to `root`, and any decoding of it joined to `root`, is a direct child of `root`."""
    for form in (name, unquote(name), unquote(unquote(name))):
        joined = (root / form).resolve()
        assert joined.parent == root.resolve() and joined != root.resolve(), (name, form)


TOKENS = ["..", ".", "/", "\\", "%2f", "%2F", "%2e", "%2E%2E", "%25", "%252f", "%5c", "%00", "%", "a", "é", "C:"]
TOKENS += ["\0", "\n", "．", "／", "\u202e", "\ud800", " ", "~", "$HOME", "con", "nul.pth"]
HOSTILE_TEXT = st.lists(st.sampled_from(TOKENS), min_size=0, max_size=8).map("".join)


@settings(max_examples=300, deadline=1000)
@given(st.one_of(st.text(), st.text(alphabet="./\\%2fFeE5cC:\0a"), HOSTILE_TEXT))
@example("..%2f..%2f..%2fescape.bin")
@example("%252e%252e")
def test_any_string_is_refused_or_stays_inside_the_root(tmp_path, name):
    try:
        safe = safe_component(name)
    except UnsafeNameError as exc:
        assert str(exc).startswith("file name: ")
        return
    assert safe == name
    _stays_inside(tmp_path, safe)


@settings(max_examples=100, deadline=1000)
@given(st.lists(st.one_of(st.text(max_size=12), HOSTILE_TEXT), min_size=1, max_size=4).map("/".join))
def test_any_relative_key_is_refused_or_stays_inside_the_root(tmp_path, key):
    try:
        safe_relative(key)
    except UnsafeNameError:
        return
    resolved = (tmp_path / key).resolve()
    assert tmp_path.resolve() in resolved.parents


URL_PATHS = st.lists(st.one_of(HOSTILE_TEXT, st.text(max_size=10)), max_size=4).map("/".join)


@st.composite
def urls(draw) -> str:
    scheme = draw(st.sampled_from(["http", "https", "file", "hf-hub", "acme", "ftp"]))
    host = draw(st.sampled_from(["127.0.0.1:8000", "example.com", "", "h%2f..", "[::1]"]))
    path = draw(URL_PATHS)
    encoded = draw(st.booleans())
    return f"{scheme}://{host}/{quote(path, safe='/%', errors='surrogatepass') if encoded else path}"


@settings(max_examples=300, deadline=1000)
@given(urls(), st.one_of(st.none(), HOSTILE_TEXT))
@example(f"http://127.0.0.1:1/{TRAVERSAL}", None)
@example("http://h/x/", "..")
@example("http://h/a\nb/..%2fx", None)
def test_for_any_url_every_cache_path_stays_inside_the_cache(url, file_name):
    try:
        key = cache.cache_key(url, file_name)
        paths = [cache.file_path(key), cache.part_path(key), cache.bad_path(key), cache.meta_path(key)]
        paths.append(cache.lock_path(key))
    except UnsafeNameError as exc:
        assert "\n" not in str(exc)  # one line, whatever the URL holds
        return
    root = cache.weights_dir().resolve()
    for path in paths:
        assert root in path.resolve().parents, (url, file_name, path)


# --- inside(): the second line of defence ---------------------------------------------------------------------


def test_inside_refuses_paths_that_resolve_outside_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert inside(root, root / "a" / "b.pth") == root / "a" / "b.pth"
    assert inside(root, root) == root
    for outside in (tmp_path / "x", root / ".." / "x", root / "a" / ".." / ".." / "x", Path("/etc/passwd")):
        with pytest.raises(UnsafeNameError, match="outside"):
            inside(root, outside)
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")  # a name that is fine, through a link that is not
    with pytest.raises(UnsafeNameError, match="elsewhere"):
        inside(root, root / "link" / "w.pth")
    (tmp_path / "root-sibling").mkdir()  # a prefix match of the root's name is not inside it
    with pytest.raises(UnsafeNameError):
        inside(root, tmp_path / "root-sibling" / "w.pth")
    (root / "loop").symlink_to(root / "loop")
    with pytest.raises(UnsafeNameError, match="refusing to write"):
        inside(root, root / "loop" / "w.pth")


def test_a_symlink_in_the_cache_cannot_carry_a_download_outside(http_server, tmp_path):  # noqa: F811
    data = b"weights" * 100
    url = http_server.add("models/model.bin", data)
    key = cache.cache_key(url)
    outside = tmp_path / "outside"
    outside.mkdir()
    (cache.weights_dir()).mkdir(parents=True, exist_ok=True)
    (cache.weights_dir() / Path(key).parent).symlink_to(outside)
    with pytest.raises(UnsafeNameError, match="outside"):
        fetch_url(url, sha256=sha256_hex(data))
    assert list(outside.iterdir()) == []
    assert http_server.requests_for("models/model.bin") == []  # refused before a socket was opened


# --- end to end: the case found by hand, and each other place outside names reach -------------------------------


def _files_outside(top: Path, home: Path) -> list[Path]:
    return [p for p in top.rglob("*") if not p.is_dir() and home not in p.parents]


def test_zoo_fetch_of_a_traversal_url_writes_nothing_outside_zoo_home(http_server, tmp_path):  # noqa: F811
    data = b"\x00escape" * 1000
    url = http_server.add(TRAVERSAL, data)
    home = tmp_path / "a" / "b" / "c" / "home"
    home.mkdir(parents=True)
    env = {**os.environ, "ZOO_HOME": str(home), "ZOO_LOAD_PLUGINS": ""}
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "fetch", url, "--sha256", sha256_hex(data)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    error = result.stderr.strip()
    assert error.startswith("Error: file name of http://127.0.0.1") and "'../../../escape.bin'" in error
    assert "contains '/'" in error and "Traceback" not in result.stderr and len(error.splitlines()) == 1
    assert _files_outside(tmp_path, home) == []
    assert not [p for p in home.rglob("*") if "escape" in p.name]
    assert http_server.requests_for(TRAVERSAL) == []  # refused before anything was downloaded


@pytest.fixture
def plugin_with(add_plugin):
    """Register a plugin whose one model has the weight set given (as a plugin's records reach zoo)."""

    def register(weights: WeightSet, family: str = "hostile", name: str = "net") -> ModelEntry:
        entry = ModelEntry(name=name, family=family, builder="x:y", weights=(weights,))

        class Plugin:
            @zoo.hookimpl
            def register_models(self, register):
                register(entry)

        add_plugin(Plugin(), "hostile-plugin")
        return entry

    return register


def test_a_plugin_file_name_with_dot_dot_is_refused_by_fetch_and_import(plugin_with, http_server, tmp_path):  # noqa: F811
    data = b"weights of a hostile plugin" * 100
    url = http_server.add("w.pth", data)
    plugin_with(WeightSet("v1", url, file_name="../../escape.pth", sha256=sha256_hex(data)))
    with pytest.raises(UnsafeNameError, match="'../../escape.pth' contains '/'"):
        fetch("hostile:net")
    have = tmp_path / "have.pth"
    have.write_bytes(data)
    with pytest.raises(UnsafeNameError, match="contains '/'"):
        import_file(have)
    home = Path(os.environ["ZOO_HOME"])
    assert not list(home.parent.rglob("escape.pth"))
    assert http_server.requests_for("w.pth") == []


def test_zoo_import_places_the_file_at_its_safe_cache_key_only(http_server, tmp_path, monkeypatch):  # noqa: F811
    data = b"weights to import" * 100
    name = hashed_name("tiny", data)
    registry = write_registry(tmp_path / "r.toml", [registry_entry("tiny", f"https://example.com/{name}", data)])
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    catalogues.reset()
    have = tmp_path / "..%2f..%2fhave.pth"  # the imported file's own name plays no part in where it goes
    have.write_bytes(data)
    (result,) = import_file(have)
    assert result.path == cache.weights_dir() / name and result.path.read_bytes() == data


@pytest.mark.parametrize(("family", "name"), [("../up", "net"), ("ok", "a/b"), ("C:", "net"), ("ok", "..\\x")])
def test_convert_output_names_from_plugins_are_refused(tmp_path, family, name):
    entry = ModelEntry(name=name, family=family, builder="x:y")
    with pytest.raises(UnsafeNameError):
        output_path(tmp_path, entry)


def test_convert_output_stays_in_the_output_directory(tmp_path):
    entry = ModelEntry(name="resnet18", family="torchvision", builder="x:y")
    assert output_path(tmp_path, entry) == tmp_path / "torchvision" / "resnet18.onnx"
    (tmp_path / "elsewhere").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "torchvision").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeNameError, match="outside"):
        output_path(out, entry)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"file": "../../escape.pth", "sha256": "ab" * 32}], "component: '..' is only dots"),
        ([{"file": "a/../../x", "sha256": "ab" * 32}], "only dots"),
        ([{"file": "/etc/passwd", "sha256": "ab" * 32}], "is empty"),
        ([{"file": "%2e%2e/x", "sha256": "ab" * 32}], "decoded from"),
        ([{"file": 3, "sha256": "ab" * 32}], "must be a string"),
        ([{"file": "ok.pth", "sha256": "ab\nxx  ../evil"}], "no 64-hex-digit sha256"),
        (["ok.pth"], "no 64-hex-digit sha256"),
        ({"ok.pth": {}}, "'files' must be a list"),
    ],
)
def test_a_hostile_mirror_index_is_refused_naming_the_file(tmp_path, files, message):
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"format": 1, "files": files}))
    with pytest.raises(UserInputError) as info:
        read_index(index)
    assert str(index) in str(info.value) and message in str(info.value) and "zoo mirror sync" in str(info.value)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "{}", "[" * 100_000])
def test_a_mirror_index_that_is_not_one_is_refused(tmp_path, text):
    index = tmp_path / "index.json"
    index.write_text(text)
    with pytest.raises(UserInputError, match="not a zoo mirror index"):
        read_index(index)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | HOSTILE_TEXT,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(["file", "sha256", "x"]), kids),
    max_leaves=10,
)
INDEX_ENTRY = st.fixed_dictionaries(
    {"file": st.one_of(HOSTILE_TEXT, st.just("ok-0123abcd.pth"), JSON), "sha256": st.sampled_from(["ab" * 32, 3])}
)


@settings(max_examples=100, deadline=1000)
@given(st.one_of(st.fixed_dictionaries({"files": st.lists(st.one_of(INDEX_ENTRY, JSON), max_size=3)}), JSON))
def test_any_mirror_index_is_read_or_refused_in_one_line(tmp_path, document):
    index = tmp_path / "index.json"
    index.write_text(json.dumps(document))
    try:
        entries = read_index(index)
    except UserInputError as exc:
        assert str(exc).startswith(f"{index}: ") and "\n" not in str(exc)
        return
    for key in entries:
        assert tmp_path.resolve() in (tmp_path / key).resolve().parents


def test_mirror_sync_refuses_a_hostile_index_and_writes_nothing(http_server, tmp_path, monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from zoo.cli.app import app

    data = b"weights to mirror" * 100
    name = hashed_name("tiny", data)
    url = http_server.add(name, data)
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [registry_entry("tiny", url, data)])))
    catalogues.reset()
    target = tmp_path / "mirror"
    target.mkdir()
    (target / "index.json").write_text(json.dumps({"files": [{"file": "../SHA256SUMS", "sha256": "ab" * 32}]}))
    result = CliRunner().invoke(app, ["mirror", "sync", "torchvision:tiny", "--to", str(target)])
    assert result.exit_code == 2 and "'../SHA256SUMS', component: '..'" in result.output, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mirror", "r.toml"]
    assert [p.name for p in target.iterdir()] == ["index.json"]


def test_mirror_sync_writes_nothing_through_a_symlink_out_of_the_mirror(http_server, tmp_path, monkeypatch):  # noqa: F811
    from typer.testing import CliRunner

    from zoo.cli.app import app

    data = b"weights without a hash in their name" * 50
    url = http_server.add("hub/model.bin", data)
    entry = registry_entry("tiny", url, data)
    monkeypatch.setenv("ZOO_REGISTRY", str(write_registry(tmp_path / "r.toml", [entry])))
    catalogues.reset()
    target, outside = tmp_path / "mirror", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    (target / Path(cache.cache_key(url)).parent).symlink_to(outside)  # `<url hash>/` leads out of the mirror
    result = CliRunner().invoke(app, ["mirror", "sync", "torchvision:tiny", "--to", str(target)])
    assert result.exit_code == 2 and "outside" in result.output, result.output
    assert list(outside.iterdir()) == []


def test_a_url_file_name_is_checked_when_a_record_is_made():
    with pytest.raises(UnsafeNameError, match="file name of https://h/x/..%2fescape.pth"):
        WeightSet("v1", "https://h/x/..%2fescape.pth")
    assert file_name_from_url("https://h/x/") == "weights"
    assert file_name_from_url("https://h/x/res%20net-0123abcd.pth") == "res net-0123abcd.pth"
    with pytest.raises(UnsafeNameError, match="not a URL"):
        file_name_from_url("http://[::1/x.pth")


def test_zoo_safe_component_is_exported_for_plugins():
    assert zoo.safe_component is safe_component and "safe_component" in zoo.__all__


def test_a_mirror_index_that_nests_too_deeply_is_ignored(http_server):  # noqa: F811
    """What a hub file's mirror says of its sha256 is read from its index.json; a hostile one says nothing."""
    from zoo.weights.fetching import _mirror_answer

    key = "0123456789ab/model.safetensors"
    http_server.add("mirror/index.json", b"[" * 100_000)
    answer = _mirror_answer(f"{http_server.base_url}/mirror/{key}", key)
    assert not answer.sha256 and http_server.requests_for("mirror/index.json")
