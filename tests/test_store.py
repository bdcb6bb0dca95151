"""The core store: layout, canonical files, errors, durability, caching."""

from __future__ import annotations

import datetime
import json
import logging
import os
import stat

import pytest

from gitpersist import (ABSENT, ConfigError, ConflictError, CorruptRecord,
                        FormatError, InvalidDocument, InvalidId, Store,
                        StoreError, paths)
from gitpersist.files import HOST
from gitpersist import files as gp_files


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store", watch="off",
               indexes={"volumes": {"display_name": None,
                                    "backend": lambda d: (d.get("host") or "@").split("@")[1].split("#")[0]}}) as s:
        yield s


def record_file(store, type, id):
    return os.path.join(store.root, *paths.record_path(type, id).split("/"))


def test_put_get_delete_find_all(store):
    store.put("volumes", "v1", {"display_name": "a", "size": 1, "host": "h@b1#p"})
    store.put("volumes", "v2", {"display_name": "b", "size": 2, "host": "h@b2#p"})
    store.put("volumes", "v3", {"display_name": "a", "size": 3, "host": "h@b2#p"})
    assert store.get("volumes", "v1") == {"id": "v1", "display_name": "a", "size": 1, "host": "h@b1#p"}
    assert store.get("volumes", "nope") is None
    assert [d["id"] for d in store.find("volumes", display_name="a")] == ["v1", "v3"]
    assert [d["id"] for d in store.find("volumes", backend="b2")] == ["v2", "v3"]
    assert [d["id"] for d in store.find("volumes", backend="b2", size=3)] == ["v3"]
    assert [d["id"] for d in store.all("volumes")] == ["v1", "v2", "v3"]
    assert store.delete("volumes", "v1") is True
    assert store.delete("volumes", "v1") is False
    assert [d["id"] for d in store.find("volumes", display_name="a")] == ["v3"]
    assert store.all("snapshots") == []
    assert store.types() == ["volumes"]


def test_index_follows_updates(store):
    store.put("volumes", "v1", {"display_name": "a"})
    assert [d["id"] for d in store.find("volumes", display_name="a")] == ["v1"]
    store.put("volumes", "v1", {"display_name": "b"})
    assert store.find("volumes", display_name="a") == []
    assert [d["id"] for d in store.find("volumes", display_name="b")] == ["v1"]


def test_returned_documents_are_copies(store):
    store.put("volumes", "v1", {"meta": {"k": "v"}})
    store.get("volumes", "v1")["meta"]["k"] = "changed"
    store.all("volumes")[0]["meta"]["k"] = "changed"
    assert store.get("volumes", "v1")["meta"] == {"k": "v"}


def test_document_id_must_agree(store):
    store.put("volumes", "v1", {"id": "v1", "x": 1})
    with pytest.raises(InvalidDocument, match="'v1'.*'v2'"):
        store.put("volumes", "v1", {"id": "v2"})


def test_creates_folder_and_parents(tmp_path):
    target = tmp_path / "a" / "b" / "store"
    with Store(target, watch="off") as s:
        s.put("t", "x", {})
    assert (target / ".gitpersist" / "format.json").is_file()


def test_path_that_is_a_file_is_named(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(StoreError, match=str(target)):
        Store(target, watch="off")


def test_uncreatable_path_is_named():
    with pytest.raises(StoreError, match="/proc/gitpersist-nope"):
        Store("/proc/gitpersist-nope/store", watch="off")


def test_closed_store_refuses_writes(tmp_path):
    s = Store(tmp_path, watch="off")
    s.close()
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.put("t", "x", {})


# -- files on disk -----------------------------------------------------------

def test_canonical_file(store):
    store.put("volumes", "v1", {"b": 1, "a": {"z": [1, 2], "y": None}})
    data = open(record_file(store, "volumes", "v1"), "rb").read()
    assert data == b'{\n  "a": {\n    "y": null,\n    "z": [\n      1,\n      2\n    ]\n  },\n  "b": 1,\n  "id": "v1"\n}\n'


def test_unchanged_record_same_bytes_same_revision(store):
    rev1 = store.put("volumes", "v1", {"b": 1, "a": 2})
    before = open(record_file(store, "volumes", "v1"), "rb").read()
    rev2 = store.put("volumes", "v1", {"a": 2, "b": 1})
    assert rev1 == rev2
    assert open(record_file(store, "volumes", "v1"), "rb").read() == before


def test_layout_and_readable_uuid(store):
    uuid = "4c0f1e2d-3c4b-4a5a-9e8f-0123456789ab"
    store.put("volumes", uuid, {})
    relpath = paths.record_path("volumes", uuid)
    assert relpath.startswith("volumes/") and relpath.endswith(f"/{uuid}.json")
    assert os.path.isfile(os.path.join(store.root, relpath))


def test_permissions(store):
    store.put("volumes", "v1", {"password": "secret"})
    path = record_file(store, "volumes", "v1")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(store.root, ".gitpersist", "write.lock")).st_mode) == 0o600


@pytest.mark.parametrize("document, where", [
    ({"meta": {1: "x"}}, "key 1 at $.meta"),
    ({"n": 2 ** 64}, "$.n does not fit in 64 bits"),
    ({"n": -(2 ** 63) - 1}, "$.n does not fit in 64 bits"),
    ({"x": [1, float("nan")]}, "$.x[1]"),
    ({"x": float("inf")}, "$.x"),
    ({"s": "\ud800"}, "$.s is not valid unicode"),
    ({"s": {1, 2}}, "set at $.s"),
    ({"b": b"bytes"}, "bytes at $.b"),
])
def test_values_that_do_not_round_trip_are_refused(store, document, where):
    store.put("volumes", "v1", {"keep": True})
    with pytest.raises(InvalidDocument) as info:
        store.put("volumes", "v1", document)
    assert "volumes 'v1'" in str(info.value) and where in str(info.value)
    assert store.get("volumes", "v1") == {"id": "v1", "keep": True}


def test_values_that_are_converted(store):
    aware = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    naive = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    store.put("t", "x", {"aware": aware, "naive": naive, "tuple": (1, 2), "big": 2 ** 64 - 1,
                         "neg": -(2 ** 63), "null": None})
    assert store.get("t", "x") == {
        "id": "x", "aware": "2024-05-06T07:08:09+02:00",
        "naive": "2024-05-06T07:08:09.123456+00:00", "tuple": [1, 2],
        "big": 2 ** 64 - 1, "neg": -(2 ** 63), "null": None}


def test_deep_nesting_refused(store):
    deep = current = {}
    for _ in range(300):
        current["x"] = {}
        current = current["x"]
    with pytest.raises(InvalidDocument, match="volumes 'v'"):
        store.put("volumes", "v", deep)


def test_bad_type_and_ids(store):
    for bad_type in ("", "Volumes", ".git", "a/b", "con", "x" * 65, 7):
        with pytest.raises(InvalidId, match="type"):
            store.put(bad_type, "x", {})
    with pytest.raises(InvalidId, match="empty"):
        store.put("t", "", {})
    with pytest.raises(InvalidId, match="lone surrogate"):
        store.put("t", "\udc80", {})
    with pytest.raises(InvalidId, match="strings"):
        store.put("t", 5, {})


# -- format version ----------------------------------------------------------

def test_format_recorded_and_newer_refused(tmp_path):
    Store(tmp_path, watch="off").close()
    format_file = tmp_path / ".gitpersist" / "format.json"
    assert json.loads(format_file.read_text())["format"] == 1
    format_file.write_text('{"format": 2, "id": "gitpersist"}')
    with pytest.raises(FormatError, match=r"format 2 is newer.*upgrade"):
        Store(tmp_path, watch="off")
    format_file.write_text("garbage")
    with pytest.raises(FormatError, match=str(format_file)):
        Store(tmp_path, watch="off")


# -- durability --------------------------------------------------------------

def test_fsync_is_switchable(tmp_path, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    with Store(tmp_path / "a", watch="off", fsync=True) as s:
        calls.clear()
        s.put("t", "x", {})
        assert len(calls) >= 2          # the file, then its folder
    with Store(tmp_path / "b", watch="off", fsync=False) as s:
        calls.clear()
        s.put("t", "x", {})
        assert calls == []


def test_failed_rename_keeps_old_record_and_no_temp(store, monkeypatch):
    store.put("volumes", "v1", {"v": 1})

    def broken_replace(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(gp_files.os, "replace", broken_replace)
    with pytest.raises(StoreError, match=r"cannot write .*v1\.json: No space left"):
        store.put("volumes", "v1", {"v": 2})
    monkeypatch.undo()
    folder = os.path.dirname(record_file(store, "volumes", "v1"))
    assert os.listdir(folder) == ["v1.json"]
    assert Store(store.root, watch="off").get("volumes", "v1") == {"id": "v1", "v": 1}


def test_leftover_temp_files_ignored_and_cleaned(store):
    store.put("volumes", "v1", {"v": 1})
    folder = os.path.dirname(record_file(store, "volumes", "v1"))
    dead_pid = 2 ** 22 + 12345          # above the default pid_max
    stale = os.path.join(folder, f".v2.json.{dead_pid}.{HOST}.abcd.tmp")
    with open(stale, "w") as f:
        f.write('{"id": "v2", "torn')
    with Store(store.root, watch="off") as fresh:
        assert [d["id"] for d in fresh.all("volumes")] == ["v1"]
    assert not os.path.exists(stale)


def test_symlinked_folder_inside_store_is_not_followed(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    relpath = paths.record_path("volumes", "v1")
    type_dir, shard = relpath.split("/")[:2]
    os.makedirs(os.path.join(store.root, type_dir), exist_ok=True)
    os.symlink(outside, os.path.join(store.root, type_dir, shard))
    with pytest.raises(StoreError, match="v1.json"):
        store.put("volumes", "v1", {"x": 1})
    assert list(outside.iterdir()) == []


def test_symlinked_record_is_replaced_not_followed(store, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("precious")
    store.put("volumes", "v1", {"x": 1})
    path = record_file(store, "volumes", "v1")
    os.unlink(path)
    os.symlink(target, path)
    store.put("volumes", "v1", {"x": 2})
    assert target.read_text() == "precious"
    assert not os.path.islink(path)


def test_a_fifo_planted_at_a_record_path_does_not_hang_readers(tmp_path):
    with Store(tmp_path, watch="off") as s:
        s.put("volumes", "good", {"x": 1})
        s.put("volumes", "fifo", {"x": 2})
    path = os.path.join(str(tmp_path), *paths.record_path("volumes", "fifo").split("/"))
    os.unlink(path)
    os.mkfifo(path, 0o600)
    with Store(tmp_path, watch="off") as s:
        assert [d["id"] for d in s.all("volumes")] == ["good"]     # skipped, with a warning
        with pytest.raises(CorruptRecord, match="not a regular file"):
            s.get("volumes", "fifo")
        s.put("volumes", "fifo", {"x": 3})          # replaced by a record again
        assert s.get("volumes", "fifo")["x"] == 3


# -- corrupt records ---------------------------------------------------------

def test_corrupt_record_is_named_and_contained(tmp_path):
    with Store(tmp_path, watch="off") as s:
        s.put("volumes", "good", {"x": 1})
        s.put("volumes", "bad", {"x": 2})
    bad = os.path.join(str(tmp_path), *paths.record_path("volumes", "bad").split("/"))
    with open(bad, "w") as f:
        f.write("{ torn")
    with Store(tmp_path, watch="off") as s:
        with pytest.raises(CorruptRecord, match=bad):
            s.get("volumes", "bad")
        assert s.get("volumes", "good") == {"id": "good", "x": 1}
        assert [d["id"] for d in s.all("volumes")] == ["good"]
        with pytest.raises(CorruptRecord, match=bad):
            s.get("volumes", "bad")
        s.put("volumes", "bad", {"x": 3})          # writing repairs it
        assert s.get("volumes", "bad") == {"id": "bad", "x": 3}


def test_record_holding_another_id_is_refused(tmp_path):
    with Store(tmp_path, watch="off") as s:
        s.put("volumes", "a", {})
    path = os.path.join(str(tmp_path), *paths.record_path("volumes", "a").split("/"))
    with open(path, "w") as f:
        f.write('{"id": "b"}')
    with Store(tmp_path, watch="off") as s:
        with pytest.raises(CorruptRecord, match="holds id 'b'"):
            s.get("volumes", "a")
        assert s.all("volumes") == []


# -- optimistic concurrency ------------------------------------------------

def test_expect_revision(store):
    with pytest.raises(ConflictError, match="expected revision deadbeef, found absent"):
        store.put("volumes", "v1", {"n": 0}, expect="deadbeef")
    rev = store.put("volumes", "v1", {"n": 1}, expect=ABSENT)
    assert store.revision("volumes", "v1") == rev
    with pytest.raises(ConflictError):
        store.put("volumes", "v1", {"n": 1}, expect=ABSENT)
    rev2 = store.put("volumes", "v1", {"n": 2}, expect=rev)
    with pytest.raises(ConflictError):
        store.put("volumes", "v1", {"n": 3}, expect=rev)
    with pytest.raises(ConflictError):
        store.delete("volumes", "v1", expect=rev)
    assert store.get("volumes", "v1")["n"] == 2
    assert store.delete("volumes", "v1", expect=rev2)


def test_a_conflict_refreshes_the_cache_even_with_no_watcher(tmp_path):
    """With watch="off" nothing tells the cache of a hand edit; a failed
    expect= has read the file, and the retry's read sees it."""
    with Store(tmp_path, watch="off", indexes={"t": {"k": None}}) as a:
        rev = a.put("t", "x", {"k": 1})
        path = tmp_path / paths.record_path("t", "x")
        path.write_text('{"id": "x", "k": 2}')
        assert a.get("t", "x")["k"] == 1          # stale, as documented
        with pytest.raises(ConflictError):
            a.put("t", "x", {"k": 9}, expect=rev)
        assert a.get("t", "x")["k"] == 2
        assert [d["id"] for d in a.find("t", k=2)] == ["x"] and a.find("t", k=1) == []
        a.put("t", "x", {"k": 10}, expect=a.revision("t", "x"))
        path.unlink()
        with pytest.raises(ConflictError):
            a.put("t", "x", {"k": 11}, expect=a.revision("t", "x"))
        assert a.get("t", "x") is None


def test_another_stores_writes_are_seen_at_once_without_a_watcher(tmp_path):
    """The change log (gitpersist.changelog): no watcher, no event, no stale read."""
    with Store(tmp_path, watch="off", indexes={"t": {"k": None}}) as a, \
            Store(tmp_path, watch="off") as b:
        a.put("t", "x", {"k": 1})
        assert [d["id"] for d in a.find("t")] == ["x"]      # the type is complete
        b.put("t", "x", {"k": 2})
        b.put("t", "y", {"k": 3})
        assert a.get("t", "x")["k"] == 2
        assert [d["id"] for d in a.find("t", k=3)] == ["y"] and a.find("t", k=1) == []
        b.delete("t", "x")
        assert a.get("t", "x") is None and [d["id"] for d in a.all("t")] == ["y"]


def test_cache_answers_without_disk(tmp_path):
    with Store(tmp_path, watch="off", indexes={"t": {"k": None}}) as s:
        s.put("t", "a", {"k": 1})
        assert s.find("t", k=1)
        os.rename(tmp_path / "t", tmp_path / "moved-away")     # unseen: watch="off"
        assert [d["id"] for d in s.find("t", k=1)] == ["a"]
        assert s.get("t", "a") == {"id": "a", "k": 1}


# -- the cache keeps its own copies; index key functions that fail ------------

def test_changing_a_put_document_afterwards_changes_nothing_stored(store):
    doc = {"display_name": "a", "host": "h@b1#p", "attach": {"host": "h1"}}
    store.put("volumes", "v1", doc)
    doc["attach"]["host"] = "h2"            # a caller reusing its dict
    doc["display_name"] = "b"
    assert store.get("volumes", "v1")["attach"] == {"host": "h1"}
    assert [d["id"] for d in store.find("volumes", display_name="a")] == ["v1"]
    assert store.find("volumes", attach={"host": "h2"}) == []
    store.put("volumes", "v1", {**doc, "display_name": "c"})
    assert store.find("volumes", display_name="a") == []       # no ghost left in the index


def index_on_attach_host(tmp_path, **options):
    return Store(tmp_path, indexes={"volumes": {"host": lambda d: d["attach"]["host"]}},
                 **options)


def test_a_put_its_index_cannot_key_is_refused_before_anything_is_written(tmp_path):
    with index_on_attach_host(tmp_path, watch="off", git=True) as store:
        with pytest.raises(InvalidDocument, match=r"volumes 'v1': index 'host' cannot key it "
                                                  r"\(KeyError: 'attach'\)"):
            store.put("volumes", "v1", {"status": "available"})
        assert store.get("volumes", "v1") is None and store.versions("volumes", "v1") == []
        assert not os.path.exists(tmp_path / paths.record_path("volumes", "v1"))


def test_a_record_on_disk_its_index_cannot_key_is_cached_but_not_indexed(tmp_path, caplog):
    """Written by a process without that index: found by id and by scans,
    left out of the index with a warning naming it; the other changes
    reported with it are applied."""
    with index_on_attach_host(tmp_path, watch="off") as reader, \
            Store(tmp_path, watch="off") as writer:
        reader.put("volumes", "v1", {"attach": {"host": "h1"}})
        reader.put("volumes", "v2", {"attach": {"host": "h1"}})
        assert len(reader.find("volumes", host="h1")) == 2
        writer.put("volumes", "v0", {"status": "no attach"})
        writer.put("volumes", "v2", {"attach": {"host": "h2"}})
        for relpath in ("volumes/x", paths.record_path("volumes", "v0"),
                        paths.record_path("volumes", "v2")):
            reader.changed(relpath)       # what the watcher reports
        assert reader.get("volumes", "v0") == {"id": "v0", "status": "no attach"}
        assert [d["id"] for d in reader.find("volumes", host="h1")] == ["v1"]
        assert [d["id"] for d in reader.find("volumes", host="h2")] == ["v2"]
        assert [d["id"] for d in reader.find("volumes", status="no attach")] == ["v0"]
    assert f"{paths.record_path('volumes', 'v0')}: index 'host' cannot key it" in caplog.text


@pytest.mark.parametrize("option, value", [
    ("fsync", "no"), ("git", "yes"), ("watch", "inotify"), ("poll_interval", -1),
    ("lock_timeout", float("nan")), ("file_mode", "rw-------"), ("dir_mode", 0o70000),
    ("commit_delay", -0.5),
])
def test_bad_options_are_refused_naming_them(tmp_path, option, value):
    with pytest.raises(ConfigError, match=f"^{option}: {value!r}"):
        Store(tmp_path / "s", **{option: value})
    assert not (tmp_path / "s").exists()        # refused before anything is made


def test_modes_may_be_octal_strings_as_in_the_plugin_config(tmp_path):
    with Store(tmp_path / "s", watch="off", file_mode="0640", dir_mode="0o750") as store:
        store.put("volumes", "v1", {})
    assert stat.S_IMODE(os.stat(tmp_path / "s" / paths.record_path("volumes", "v1")).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "s" / "volumes").st_mode) == 0o750


def test_corrupt_names_what_a_listing_left_out(tmp_path, caplog):
    """Reported by return value, whatever the application's logging says."""
    caplog.set_level(logging.ERROR)
    with Store(tmp_path, watch="off") as store:
        store.put("volumes", "good", {})
        broken = tmp_path / paths.record_path("volumes", "broken")
        broken.parent.mkdir(parents=True, exist_ok=True)
        broken.write_text("{ torn")
        misplaced = tmp_path / paths.record_path("volumes", "here")
        misplaced.parent.mkdir(parents=True, exist_ok=True)
        misplaced.write_text('{"id": "elsewhere"}')
        assert [d["id"] for d in store.all("volumes")] == ["good"]
        found = {os.path.basename(c.path): c.reason for c in store.corrupt("volumes")}
        assert set(found) == {"broken.json", "here.json"}
        assert "belongs at another path" in found["here.json"]
        with pytest.raises(CorruptRecord, match="here.json"):
            store.get("volumes", "here")
        assert store.corrupt("snapshots") == []


def test_a_store_that_fails_to_open_leaves_no_descriptor_or_thread(tmp_path):
    import threading
    (tmp_path / ".gitpersist").mkdir()
    (tmp_path / ".gitpersist" / "format.json").write_text('{"format": 99}')
    before = (len(os.listdir("/proc/self/fd")), threading.active_count())
    for _ in range(5):
        with pytest.raises(FormatError, match="newer"):
            Store(tmp_path, watch="native")
    assert (len(os.listdir("/proc/self/fd")), threading.active_count()) == before
