"""Hostile input: ids, names and keys of any string, JSON values at the
limits, non-JSON values from callers, through the store (plain and git) and
through the cinderlib plugin.  Everything is stored and read back exactly,
or refused with an error naming it; nothing is written outside its type
folder; nothing a caller chose reaches a commit message raw.

(Id encoding itself is property-tested in test_paths.py, plain mode.)"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitpersist import InvalidDocument, InvalidId, Store, fsck, paths
from helpers import GIT_ENV, git_bytes

HOSTILE = [
    "../../etc/passwd", "/abs", "a/b", "a\\b", "..", ".", ".git", ".gitpersist",
    "\x00", "nul\x00byte", "line\nSigned-off-by: Mallory <m@example.com>", "\r", "\t",
    "\x1b]0;pwned\x07", "\x1b[2J", "\x7f", "CON", "con", "nul.txt", "COM1", "lpt9",
    "x" * 5000, "ü" * 3000, "\U0001f600", "\u202eevil", "Ab", "aB", "AB", "ab", " ", "~",
    "_2e", "%2e%2e", '*?<>|:"', "HEAD", "refs/heads/main", ":(literal)x", "-rf",
]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=20)


@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def files_outside(root, types: set[str]) -> list[str]:
    """Files below `root` that are not in a type folder, .gitpersist or .git."""
    allowed = types | {".gitpersist", ".git"}
    return [os.path.join(folder, name) for folder, _, names in os.walk(root)
            for name in names if os.path.relpath(folder, root).split(os.sep)[0] not in allowed]


def test_hostile_ids_and_names_in_git(tmp_path):
    root = str(tmp_path / "store")
    with Store(root, git=True, watch="off") as store:
        for n, id in enumerate(HOSTILE):
            store.put("volumes", id, {"display_name": id, id: n, "status": id[:50]})
        store.put("volumes", HOSTILE[0], {"display_name": HOSTILE[0], "status": "\x1b[2J\n"})
        store.delete("volumes", HOSTILE[1])
    expected = {id: {"id": id, "display_name": id, id: n, "status": id[:50]}
                for n, id in enumerate(HOSTILE) if id != HOSTILE[1]}
    expected[HOSTILE[0]] = {"id": HOSTILE[0], "display_name": HOSTILE[0], "status": "\x1b[2J\n"}
    with Store(root, git=True, watch="off") as store:     # from disk
        assert {d["id"]: d for d in store.all("volumes")} == expected
        for id, document in expected.items():
            assert store.get("volumes", id) == document
            assert store.get_at("volumes", id, "HEAD") == document
    # every path git holds is a store file in its folder
    tracked = git_bytes(root, "ls-files", "-z").split(b"\0")
    assert all(path.startswith(b"volumes/") or path.startswith(b".gitpersist/")
               for path in tracked if path)
    assert files_outside(root, {"volumes"}) == []
    # one printable subject per commit: nothing forged, nothing for the terminal
    count = int(git_bytes(root, "rev-list", "--count", "HEAD"))
    messages = git_bytes(root, "log", "-z", "--format=%B").decode().split("\0")
    assert len(messages) == count + 1
    for message in messages[:-1]:
        subject, _, body = message.partition("\n")
        assert subject.isprintable(), subject
        assert "Signed-off-by" not in body and "\x1b" not in message and "\r" not in message
    assert git_bytes(root, "status", "--porcelain") == b""
    assert fsck.clean(fsck.check(root, git=True))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(TEXT.filter(bool), min_size=1, max_size=4, unique=True), st.data())
def test_any_id_and_document_round_trip_through_git(tmp_path_factory, ids, data):
    root = str(tmp_path_factory.mktemp("store"))
    documents = {id: data.draw(st.dictionaries(TEXT, JSON, max_size=5)) for id in ids}
    with Store(root, git=True, watch="off", fsync=False) as store:
        for id, document in documents.items():
            store.put("volumes", id, {k: v for k, v in document.items() if k != "id"})
    with Store(root, git=True, watch="off", fsync=False) as store:
        for id, document in documents.items():
            expected = {**{k: v for k, v in document.items() if k != "id"}, "id": id}
            assert store.get("volumes", id) == expected
            assert store.get_at("volumes", id, "HEAD") == expected
    assert files_outside(root, {"volumes"}) == []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(TEXT, JSON, max_size=8))
def test_any_keys_and_json_values_round_trip(tmp_path_factory, document):
    document.pop("id", None)
    root = str(tmp_path_factory.mktemp("store"))
    with Store(root, watch="off", fsync=False) as store:
        store.put("t", "x", document)
        assert store.get("t", "x") == {**document, "id": "x"}
    with Store(root, watch="off", fsync=False) as store:
        assert store.get("t", "x") == {**document, "id": "x"}


# -- JSON at the limits -------------------------------------------------------------

def nested(levels: int) -> dict:
    document: dict = {}
    for _ in range(levels - 1):
        document = {"x": document}
    return document


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_nesting_up_to_the_limit_and_no_further(tmp_path, use_git):
    root = str(tmp_path / "store")
    with Store(root, git=use_git, watch="off") as store:
        store.put("t", "deep", nested(254))                 # 254 levels: the limit
        with pytest.raises(InvalidDocument, match=r"t 'deep': nesting deeper than 254 "
                                                  r"levels at \$(\.x)+"):
            store.put("t", "deep", nested(255))
        with pytest.raises(InvalidDocument, match="nesting deeper than 254 levels"):
            store.put("t", "list", {"x": [[[[[[nested(250)]]]]]]})
    with Store(root, git=use_git, watch="off") as store:
        assert store.get("t", "deep") == {**nested(254), "id": "deep"}
        assert store.get("t", "list") is None


@pytest.mark.slow
@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_huge_strings(tmp_path, use_git):
    root = str(tmp_path / "store")
    big = "€" * (10 * 2 ** 20 // 3)                         # 10 MB of UTF-8
    key = "k" * 2 ** 20
    with Store(root, git=use_git, watch="off") as store:
        store.put("t", "big", {"value": big, key: "long key", "n": 1})
        store.put("t", "big", {"value": big, key: "long key", "n": 2})
    with Store(root, git=use_git, watch="off") as store:
        assert store.get("t", "big") == {"id": "big", "value": big, key: "long key", "n": 2}
        if use_git:
            assert store.get_at("t", "big", "HEAD~1")["n"] == 1
            [subject] = git_bytes(root, "log", "-1", "--format=%s").decode().splitlines()
            assert subject == "t big: n 1 -> 2"


@pytest.mark.parametrize("document, where", [
    ({None: 1}, "key None at $"),
    ({True: 1}, "key True at $"),
    ({1.5: 1}, "key 1.5 at $"),
    ({(1, 2): 1}, "key (1, 2) at $"),
    ({b"k": 1}, "key b'k' at $"),
    ({"a": [{"b": {3: 4}}]}, "key 3 at $.a[0].b"),
    ({"\ud800": 1}, "not valid unicode"),
    ({"a": object()}, "object at $.a is not a JSON type"),
    ({"a": {"b": {1, 2}}}, "set at $.a.b"),
])
def test_values_callers_may_pass_that_json_cannot_hold(tmp_path, document, where):
    with Store(tmp_path, watch="off") as store:
        store.put("t", "x", {"keep": True})
        path = os.path.join(tmp_path, *paths.record_path("t", "x").split("/"))
        before = open(path, "rb").read()
        with pytest.raises(InvalidDocument) as info:
            store.put("t", "x", document)
        assert str(info.value).startswith("t 'x': ") and where in str(info.value)
        assert open(path, "rb").read() == before
        assert store.get("t", "x") == {"id": "x", "keep": True}


@pytest.mark.parametrize("document", [None, ["a"], "text", 5, b"{}"])
def test_a_document_that_is_not_a_mapping(tmp_path, document):
    with Store(tmp_path, watch="off") as store:
        with pytest.raises(InvalidDocument, match=r"t 'x': a document is a mapping .*, "
                                                  f"not {type(document).__name__}"):
            store.put("t", "x", document)
        assert store.get("t", "x") is None


@pytest.mark.parametrize("id", [None, 5, b"bytes", ("t",), ""])
def test_ids_that_are_not_strings(tmp_path, id):
    with Store(tmp_path, watch="off") as store:
        with pytest.raises(InvalidId, match="id"):
            store.put("t", id, {})
        with pytest.raises(InvalidId, match="id"):
            store.get("t", id)
        assert store.types() == []


# -- through the cinderlib plugin --------------------------------------------------

PLUGIN_HOSTILE = ["../../etc/passwd", ".git", "nul\x00byte", "line\nSigned-off-by: M <m@x>",
                  "\x1b]0;pwned\x07", "CON", "x" * 5000, "\u202eevil", "Vol", "vol"]


@pytest.mark.cinderlib
@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
@pytest.mark.filterwarnings("ignore::FutureWarning")     # ids that are not UUIDs
def test_hostile_names_ids_and_keys_through_the_plugin(cinderlib_setup, tmp_path, use_git):
    cinderlib = pytest.importorskip("cinderlib")
    from cinderlib.tests.unit import utils as cl_utils

    from gitpersist.plugin import FilePersistence
    folder = str(tmp_path / "store")
    cinderlib_setup(persistence_config={"storage": "file", "path": folder, "git": use_git,
                                        "fsync": False})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    saved = {}
    for n, text in enumerate(PLUGIN_HOSTILE):
        vol = cinderlib.Volume(backend, id=text, size=1, name=text,
                               metadata={text: text, "../k": "\x00"}, extra_specs={text: text})
        vol.save()
        snap = cinderlib.Snapshot(vol, id=f"snap{text}", name=text)
        snap.save()
        conn = cinderlib.Connection(backend, volume=vol, id=f"conn{text}",
                                    connector={"host": text},
                                    connection_info={"conn": {"data": {text: text}}})
        conn.save()
        cinderlib.Backend.persistence.set_key_value(cinderlib.KeyValue(text, text))
        saved[text] = (vol, snap, conn)

    reader = FilePersistence(path=folder, watch="off")
    try:
        for text, (vol, snap, conn) in saved.items():
            [got] = reader.get_volumes(volume_id=text)
            assert (got.id, got.name, got.metadata) == (text, text, vol.metadata)
            assert got._ovo.volume_type.extra_specs == {text: text}
            assert [v.id for v in reader.get_volumes(volume_name=text)] == [text]
            [got_snap] = reader.get_snapshots(snapshot_id=f"snap{text}")
            assert (got_snap.name, got_snap.volume_id) == (text, text)
            [got_conn] = reader.get_connections(connection_id=f"conn{text}")
            assert got_conn.volume_id == text
            assert got_conn.connector == {"host": text}
            assert [(kv.key, kv.value) for kv in reader.get_key_values(text)] == [(text, text)]
        assert len(reader.get_volumes()) == len(PLUGIN_HOSTILE)     # Vol and vol apart
    finally:
        reader.close()
    assert files_outside(folder, {"volumes", "snapshots", "connections", "key_values"}) == []
    if use_git:
        cinderlib.Backend.persistence.store.flush()        # the index follows
        assert git_bytes(folder, "status", "--porcelain") == b""
        log = git_bytes(folder, "log", "--format=%B").decode()
        assert "\x1b" not in log and "\nSigned-off-by" not in log
