"""The cache's snapshot (gitpersist/snapshot.py): a reopened store reads only
the record files that changed while nothing ran, and a snapshot that is
corrupt, foreign or planted never yields wrong data."""

from __future__ import annotations

import gc
import hmac
import json
import os
import shutil
import stat
import subprocess
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from helpers import edit_in_place
from hypothesis import strategies as st

from gitpersist import Store, fsck, paths
from gitpersist.reader import Reader
from gitpersist.snapshot import MAGIC, VERSION, Snapshots

N = 40


@pytest.fixture(autouse=True)
def small_types_have_snapshots(monkeypatch):
    monkeypatch.setattr(Snapshots, "MIN_RECORDS", 1)


@pytest.fixture
def reads(monkeypatch):
    """The relpaths of the record files read from disk (a list)."""
    seen: list[str] = []
    read = Reader.read

    def counting(self, relpath, *args, **kwargs):
        seen.append(relpath)
        return read(self, relpath, *args, **kwargs)
    monkeypatch.setattr(Reader, "read", counting)
    return seen


def file_of(root, id: str):
    return root / paths.record_path("volumes", id)


def truth(root) -> list[dict]:
    """Every record as its file holds it, sorted by id."""
    docs = [json.loads(path.read_bytes()) for path in (root / "volumes").glob("*/*.json")]
    return sorted(docs, key=lambda doc: doc["id"])


def snapshotted(root, **options) -> None:
    """A store of N records whose snapshot holds every one of them: written,
    left to settle, then loaded (which reads them all and saves it)."""
    with Store(root, watch="off", **options) as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": i, "name": f"vol-{i:03d}"})
    time.sleep(0.25)        # past FINE_TICK: what is read now has settled
    with Store(root, watch="off", **options) as store:
        store.all("volumes")
    assert (root / ".gitpersist/snapshot/volumes.snap").exists()


def test_a_reopened_store_reads_only_the_files_changed_while_it_was_closed(tmp_path, reads):
    root = tmp_path / "s"
    snapshotted(root)
    # while nothing runs: a replaced file, a removed one, a new one, and one
    # edited in place keeping its size and its mtime (only ctime tells)
    replaced, removed, edited = file_of(root, "v001"), file_of(root, "v002"), file_of(root, "v003")
    temp = replaced.with_name("new.tmp-by-hand")
    temp.write_bytes(replaced.read_bytes().replace(b"vol-001", b"new-001"))
    os.replace(temp, replaced)
    removed.unlink()
    added = file_of(root, "w")
    added.parent.mkdir(exist_ok=True)
    added.write_text('{"id": "w", "n": -1}')
    before = edit_in_place(edited, b"vol-003", b"edt-003")
    after = os.stat(edited)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    del reads[:]
    with Store(root, watch="off", indexes={"volumes": {"name": None}}) as store:
        assert store.all("volumes") == truth(root)
        assert [d["id"] for d in store.find("volumes", name="edt-003")] == ["v003"]
        assert store.find("volumes", name="vol-002") == []
    assert sorted(reads) == sorted(paths.record_path("volumes", id)
                                   for id in ("v001", "v003", "w"))


def test_a_store_without_a_snapshot_reads_every_file(tmp_path, reads):
    """The counterpart of the test above: what the snapshot saves."""
    root = tmp_path / "s"
    snapshotted(root)
    shutil.rmtree(root / ".gitpersist/snapshot")
    del reads[:]
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)
    assert len(reads) == N


def test_records_written_just_before_the_snapshot_are_read_again(tmp_path, reads):
    """A file whose ctime is not safely older than its read is never
    saved: a same-size edit in the same clock tick would not show."""
    root = tmp_path / "s"
    with Store(root, watch="off") as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": i})
        store.all("volumes")
    del reads[:]
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)
    assert len(reads) == N


def test_an_in_place_edit_in_the_second_a_file_was_read_is_seen(coarse_fs, reads):
    """1-second timestamps: read, then edited in place (same size) in the
    same second, the file has the signature it was read with, ctime too."""
    root = coarse_fs / "s"
    with Store(root, watch="off") as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": 0})
    path = file_of(root, "v000")
    for attempt in range(5):
        time.sleep(1 - time.time() % 1 + 0.01)      # the start of a second
        second = int(time.time())
        path.write_text('{"id": "v000", "n": 1}')
        with Store(root, watch="off") as store:     # reads it in that second, saves
            assert store.get("volumes", "v000")["n"] == 1
            store.all("volumes")
        path.write_text('{"id": "v000", "n": 2}')   # same size, same second
        if int(time.time()) == second:
            break
    else:
        pytest.skip("could not stay within one second")
    assert (root / ".gitpersist/snapshot/volumes.snap").exists()
    with Store(root, watch="off") as store:
        assert [d["n"] for d in store.all("volumes") if d["id"] == "v000"] == [2]


def test_secret_fields_never_reach_the_snapshot(tmp_path):
    root = tmp_path / "s"
    secrets = {"volumes": ["password"]}
    with Store(root, watch="off", secret_fields=secrets) as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": i, **({"password": f"hunter2-{i}"}
                                                           if i % 2 else {})})
    time.sleep(0.25)
    with Store(root, watch="off", secret_fields=secrets) as store:
        store.all("volumes")
    folder = root / ".gitpersist/snapshot"
    for path in folder.iterdir():
        assert b"hunter2" not in path.read_bytes()
    assert stat.S_IMODE(os.stat(folder / "key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder / "volumes.snap").st_mode) == 0o600
    with Store(root, watch="off", secret_fields=secrets) as store:
        assert store.get("volumes", "v001")["password"] == "hunter2-1"
        assert [d.get("password") for d in store.all("volumes")][:4] == [
            None, "hunter2-1", None, "hunter2-3"]


def test_the_snapshot_is_never_committed_and_fsck_knows_it(tmp_path):
    root = tmp_path / "s"
    snapshotted(root, git=True, author="t <t@example.com>")
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"],
                            capture_output=True, text=True, check=True)
    assert status.stdout == ""
    tracked = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True,
                             text=True, check=True).stdout
    assert "snapshot" not in tracked
    assert fsck.check(root) == []


def _resign(root, body: bytes, version: int = VERSION, key: bytes | None = None) -> bytes:
    key = (root / ".gitpersist/snapshot/key").read_bytes() if key is None else key
    return b"%s %d %s\n" % (MAGIC, version, hmac.new(key, body, "sha256").hexdigest().encode()
                            ) + body


def _edit_rows(body: bytes, edit) -> bytes:
    snapshot = orjson.loads(body)
    for _, rows in snapshot["shards"].values():
        for row in rows:
            edit(row)
    return orjson.dumps(snapshot)


def _changed_value(row):
    row[7]["n"] = -99


def _other_id(row):
    row[7]["id"] = "v" + row[7]["id"]


def _wrong_types(row):
    row[6] = 12


MUTATIONS = {
    "truncated": lambda root, data: data[:len(data) // 2],
    "garbage": lambda root, data: os.urandom(len(data)),
    "empty": lambda root, data: b"",
    "a value changed": lambda root, data: data.replace(b'"n":1,', b'"n":7,', 1),
    "a value changed, signed with another key": lambda root, data: _resign(
        root, _edit_rows(data.partition(b"\n")[2], _changed_value), key=b"k" * 32),
    "another format version": lambda root, data: _resign(
        root, data.partition(b"\n")[2], version=VERSION + 1),
    "rows holding ids that belong elsewhere": lambda root, data: _resign(
        root, _edit_rows(data.partition(b"\n")[2], _other_id)),
    "rows of the wrong shape": lambda root, data: _resign(
        root, _edit_rows(data.partition(b"\n")[2], _wrong_types)),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_corrupt_or_foreign_snapshot_is_ignored_and_rebuilt(tmp_path, mutation):
    root = tmp_path / "s"
    snapshotted(root)
    path = root / ".gitpersist/snapshot/volumes.snap"
    path.write_bytes(MUTATIONS[mutation](root, path.read_bytes()))
    with Store(root, watch="off", indexes={"volumes": {"n": None}}) as store:
        assert store.all("volumes") == truth(root)
        assert [d["id"] for d in store.find("volumes", n=1)] == ["v001"]
        assert store.find("volumes", n=-99) == []
    with Store(root, watch="off") as store:
        assert snapshots_of(store).load("volumes") is not None     # rebuilt at that load


def test_a_snapshot_copied_with_its_store_is_not_the_copys(tmp_path):
    root, copy = tmp_path / "s", tmp_path / "copy"
    snapshotted(root)
    shutil.copytree(root, copy, copy_function=shutil.copy2)
    with Store(copy, watch="off") as store:
        assert snapshots_of(store).load("volumes") is None
        assert store.all("volumes") == truth(copy)


def test_a_symlink_or_a_fifo_in_place_of_the_snapshot_is_ignored(tmp_path):
    root = tmp_path / "s"
    snapshotted(root)
    path = root / ".gitpersist/snapshot/volumes.snap"
    os.replace(path, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", path)
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)
    path.unlink()
    os.mkfifo(path)
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)


def test_a_snapshot_that_cannot_be_written_changes_nothing(tmp_path):
    root = tmp_path / "s"
    with Store(root, watch="off") as store:
        store.put("volumes", "v", {"n": 1})
    (root / ".gitpersist/snapshot").write_text("a file where the folder goes")
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)
        store.put("volumes", "w", {"n": 2})
        entries = store._cache.complete("volumes").entries.values()
        assert snapshots_of(store).save("volumes", entries) is False
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A store with its snapshot, and the snapshot's bytes."""
    root = tmp_path_factory.mktemp("built") / "s"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Snapshots, "MIN_RECORDS", 1)
        snapshotted(root)
    return root, (root / ".gitpersist/snapshot/volumes.snap").read_bytes()


@settings(max_examples=60, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(where=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
def test_any_changed_byte_never_yields_wrong_data(built, where, byte):
    root, original = built
    data = bytearray(original)
    data[int(where * len(data))] = byte
    (root / ".gitpersist/snapshot/volumes.snap").write_bytes(bytes(data))
    with Store(root, watch="off") as store:
        assert store.all("volumes") == truth(root)


def test_the_collector_is_on_again_after_a_load(tmp_path):
    root = tmp_path / "s"
    snapshotted(root)
    with Store(root, watch="off") as store:
        store.all("volumes")
        assert gc.isenabled()
    gc.disable()
    try:
        with Store(root, watch="off") as store:
            store.all("volumes")
            assert not gc.isenabled()       # the caller's choice is kept
    finally:
        gc.enable()


def snapshots_of(store: Store) -> Snapshots:
    return store._cache.snapshots


def test_records_with_secret_fields_read_only_their_side_file(tmp_path, reads):
    root = tmp_path / "s"
    secrets = {"volumes": ["password"]}
    with Store(root, watch="off", secret_fields=secrets) as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": i, "password": f"hunter2-{i}"})
        revisions = [store.revision("volumes", f"v{i:03d}") for i in range(N)]
    time.sleep(0.25)
    with Store(root, watch="off", secret_fields=secrets) as store:
        store.all("volumes")
    assert b"hunter2" not in (root / ".gitpersist/snapshot/volumes.snap").read_bytes()
    # while closed: a secret changes (the record file is replaced with it)
    with Store(root, watch="off", secret_fields=secrets) as store:
        revisions[1] = store.put("volumes", "v001", {"n": 1, "password": "changed"})
    del reads[:]
    with Store(root, watch="off", secret_fields=secrets) as store:
        found = store.all("volumes")
        assert [d["password"] for d in found] == ["hunter2-0", "changed"] + [
            f"hunter2-{i}" for i in range(2, N)]
        assert [store.revision("volumes", d["id"]) for d in found] == revisions
    assert reads == [paths.record_path("volumes", "v001")]


def test_a_read_only_file_system_reads_the_snapshot_and_cannot_break_on_it(coarse_fs, reads):
    root = coarse_fs / "s"
    with Store(root, watch="off") as store:
        for i in range(N):
            store.put("volumes", f"v{i:03d}", {"n": i})
    time.sleep(2.1)         # 1-second timestamps: settled after COARSE_TICK
    with Store(root, watch="off") as store:
        store.all("volumes")
    subprocess.run(["mount", "-o", "remount,ro", str(coarse_fs)], check=True)
    try:
        del reads[:]
        with Store(root, watch="off") as store:
            assert store.all("volumes") == truth(root)
        assert reads == []
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(coarse_fs)], check=True)
    (root / ".gitpersist/snapshot/volumes.snap").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(coarse_fs)], check=True)
    try:
        with Store(root, watch="off") as store:     # saving it fails: nothing else does
            assert store.all("volumes") == truth(root)
            store.all("volumes")
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(coarse_fs)], check=True)
    assert not (root / ".gitpersist/snapshot/volumes.snap").exists()
