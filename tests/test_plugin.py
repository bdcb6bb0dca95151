"""storage="file": what the plugin promises beyond cinderlib's contract suite
(setup forms, configuration errors, soft deletes, the files themselves, and
what a new plugin instance, as in a new process, reads back)."""

from __future__ import annotations

import json
import logging
import pathlib
import threading

import pytest

from helpers import CINDERLIB_MISSING  # noqa: E402

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

import cinderlib  # noqa: E402
from cinderlib.persistence import base as persistence_base  # noqa: E402
from cinderlib.tests.unit import utils as cl_utils  # noqa: E402
from oslo_versionedobjects import fields as ovo_fields  # noqa: E402

from helpers import eventually, start_python  # noqa: E402

from gitpersist import ConfigError, CorruptRecord, Store, paths  # noqa: E402
from gitpersist.cinder.plugin import OPTIONS, FilePersistence  # noqa: E402
import gitpersist.cinder.plugin  # noqa: E402

FAKE_DRIVER = "cinder.tests.fake_driver.FakeLoggingVolumeDriver"


def fields_of(resource):
    """What cinderlib's contract compares: the OVO's fields but objects."""
    ovo = resource._ovo
    return {key: value for key, value in dict(ovo).items()
            if not isinstance(ovo.fields.get(key), ovo_fields.ObjectField)}


def record(store_path, type, id):
    return json.loads(pathlib.Path(store_path, *paths.record_path(type, id).split("/"))
                      .read_bytes())


@pytest.fixture
def folder(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def plugin(cinderlib_setup, folder):
    """cinderlib set up on storage="file" in plain mode, with a fake backend."""
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(folder), "fsync": False})
    cl_utils.FakeBackend(volume_backend_name="fake")
    return persistence


@pytest.fixture
def backend(plugin):
    return cinderlib.Backend.backends["fake"]


@pytest.fixture
def fresh(folder):
    """A new plugin instance on the same folder: what a new process reads.
    (Its fake DB re-points cinder's hooks at itself; the test's teardown puts
    them back.)"""
    opened = []

    def open_(**options):
        opened.append(FilePersistence(path=str(folder), watch="off", **options))
        return opened[-1]
    yield open_
    for plugin in opened:
        plugin.close()


# -- setup ---------------------------------------------------------------------

@pytest.mark.parametrize("form", ["name", "class", "instance"])
@pytest.mark.parametrize("git", [False, True])
def test_the_three_setup_forms(cinderlib_setup, folder, form, git):
    config = {"path": str(folder), "git": git, "soft_deletes": True}
    storage = ({"storage": "file", **config} if form == "name"
               else {"storage": FilePersistence, **config} if form == "class"
               else {"storage": FilePersistence(**config)})
    persistence = cinderlib_setup(persistence_config=storage)
    assert isinstance(persistence, FilePersistence)
    assert persistence.store.root == str(folder)
    assert (persistence.store.history is not None) is git
    assert persistence.soft_deletes is True
    assert isinstance(persistence.db, persistence_base.DB)
    cl_utils.FakeBackend(volume_backend_name="fake")
    vol = cinderlib.Volume("fake", size=1, name="disk")
    vol.save()
    assert [v.id for v in cinderlib.Volume.get_by_name("disk")] == [vol.id]
    assert (folder / ".git").is_dir() is git


def test_every_option_is_documented():
    doc = gitpersist.cinder.plugin.__doc__
    for key, (default, check) in OPTIONS.items():
        assert f"\n{key} " in doc, key
        if key != "path":
            assert check(key, default) == default, key


@pytest.mark.parametrize("config, key", [
    ({"pth": "x"}, "pth"),
    ({"path": "x", "gti": True}, "gti"),
    ({}, "path"),
    ({"path": None}, "path"),
    ({"path": ""}, "path"),
    ({"path": 3}, "path"),
    ({"path": "x", "git": "yes"}, "git"),
    ({"path": "x", "fsync": 1}, "fsync"),
    ({"path": "x", "soft_deletes": "false"}, "soft_deletes"),
    ({"path": "x", "watch": "inotify"}, "watch"),
    ({"path": "x", "poll_interval": 0}, "poll_interval"),
    ({"path": "x", "poll_interval": "1"}, "poll_interval"),
    ({"path": "x", "lock_timeout": -1}, "lock_timeout"),
    ({"path": "x", "lock_timeout": float("nan")}, "lock_timeout"),
    ({"path": "x", "author": "bob"}, "author"),
    ({"path": "x", "commit_mode": "later"}, "commit_mode"),
    ({"path": "x", "commit_delay": True}, "commit_delay"),
    ({"path": "x", "file_mode": "rw-r--r--"}, "file_mode"),
    ({"path": "x", "dir_mode": 0o17777}, "dir_mode"),
])
def test_bad_configuration_is_refused_naming_the_key(tmp_path, monkeypatch, config, key):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        FilePersistence(**config)
    assert list(tmp_path.iterdir()) == []        # nothing created


def test_bad_configuration_is_refused_at_setup(cinderlib_setup, folder):
    with pytest.raises(ConfigError, match="'watch'"):
        cinderlib_setup(persistence_config={"storage": "file", "path": str(folder),
                                            "watch": "sometimes"})
    assert not folder.exists()


def test_options_reach_the_store(fresh, folder):
    plugin = fresh(git=True, author="Ops Team <ops@example.com>", file_mode="0640",
                   dir_mode=0o750, commit_mode="sync")
    plugin.set_key_value(cinderlib.KeyValue("k", "v"))
    path = folder.joinpath(*paths.record_path("key_values", "k").split("/"))
    assert path.stat().st_mode & 0o777 == 0o640
    assert path.parent.stat().st_mode & 0o777 == 0o750
    [version] = plugin.store.versions("key_values", "k")
    assert version.author == "Ops Team <ops@example.com>"
    assert version.message.strip() == "key k: created"


# -- what the files hold ---------------------------------------------------------------

def test_a_volume_file_holds_its_own_fields_only(plugin, backend, folder):
    vol = cinderlib.Volume(backend, size=2, name="data", extra_specs={"k": "v"},
                           qos_specs={"iops": "100"}, metadata={"m": "1"})
    vol.save()
    snap = cinderlib.Snapshot(vol, name="snap")
    snap.save()
    conn = cinderlib.Connection(backend, volume=vol, connector={"host": "h"},
                                connection_info={"conn": {"data": {}}})
    conn.save()

    text = pathlib.Path(folder, *paths.record_path("volumes", vol.id).split("/")).read_text()
    doc = json.loads(text)
    assert text.startswith('{\n  "')                    # indented: one field a line
    assert list(doc) == sorted(doc)                      # stable order
    assert None not in doc.values()                      # no null noise
    assert doc["volume_type"] == {"extra_specs": {"k": "v"}, "qos_specs": {"iops": "100"}}
    assert doc["host"].endswith("@fake#fake")
    assert doc["created_at"].endswith("Z")
    for related in ("snapshots", "volume_attachment", "cluster", "group", "backend"):
        assert related not in doc
    snap_doc = record(folder, "snapshots", snap.id)
    conn_doc = record(folder, "connections", conn.id)
    assert "volume" not in snap_doc and "volume" not in conn_doc
    assert snap_doc["volume_id"] == conn_doc["volume_id"] == vol.id


def test_one_change_is_a_one_line_diff(plugin, backend, folder):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    path = pathlib.Path(folder, *paths.record_path("volumes", vol.id).split("/"))
    before = path.read_text().splitlines()
    vol._ovo.status = "available"
    vol.save()
    after = path.read_text().splitlines()
    assert len(before) == len(after)
    assert [(a, b) for a, b in zip(before, after) if a != b] == [
        ('  "status": "creating",', '  "status": "available",')]


def test_git_commit_says_what_changed(cinderlib_setup, folder):
    cinderlib_setup(persistence_config={"storage": "file", "path": str(folder), "git": True})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    vol._ovo.status = "available"
    vol.save()
    store = cinderlib.Backend.persistence.store
    messages = [v.message.strip() for v in store.versions("volumes", vol.id)]
    assert messages == [f"volume {vol.id} (data): status creating -> available",
                        f"volume {vol.id} (data): created"]
    diff = store.diff("volumes", vol.id, "HEAD~1", "HEAD")
    assert [line for line in diff.splitlines()
            if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        '-  "status": "creating",', '+  "status": "available",']


def test_no_backend_configuration_in_any_file(cinderlib_setup, folder):
    cinderlib_setup(persistence_config={"storage": "file", "path": str(folder), "git": True})
    backend = cinderlib.Backend(volume_backend_name="lvm", volume_driver=FAKE_DRIVER,
                                san_login="admin", san_password="s3cret-Pa55",
                                san_ip="192.0.2.10")
    vol = backend.create_volume(1, name="data")
    vol.create_snapshot(name="snap")
    vol.connect({"host": "h", "initiator": "iqn.2024-01.test:h", "multipath": False})
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in files)
    for secret in (b"s3cret-Pa55", b"san_password", b"192.0.2.10", b"volume_driver"):
        assert not [p for p in files if secret in p.read_bytes()], secret


def test_corrupt_field_names_the_file_and_field(plugin, backend, folder, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    path = pathlib.Path(folder, *paths.record_path("volumes", vol.id).split("/"))
    path.write_text(path.read_text().replace('"size": 1', '"size": "one"'))
    with pytest.raises(CorruptRecord) as info:
        fresh().get_volumes(volume_id=vol.id)
    assert str(path) in str(info.value) and "'size'" in str(info.value)


def test_a_listing_skips_a_record_cinderlib_cannot_read_naming_it(
        plugin, backend, folder, fresh, caplog):
    """One hand-broken file does not hide every other volume."""
    good, bad = (cinderlib.Volume(backend, size=1, name=name) for name in ("good", "bad"))
    good.save()
    bad.save()
    path = pathlib.Path(folder, *paths.record_path("volumes", bad.id).split("/"))
    path.write_text(path.read_text().replace('"size": 1', '"size": "one"'))
    reader = fresh()
    logging.Logger.disabled = False     # cinderlib.setup(disable_logs=True) turned it off
    with caplog.at_level("WARNING", logger="gitpersist.plugin"):
        assert [v.id for v in reader.get_volumes()] == [good.id]
        assert [v.id for v in reader.get_volumes(backend_name="fake")] == [good.id]
    assert str(path) in caplog.text and "'size'" in caplog.text
    with pytest.raises(CorruptRecord):
        reader.get_volumes(volume_id=bad.id)


def test_hand_written_volume_without_metadata_reads(plugin, backend, folder, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    path = pathlib.Path(folder, *paths.record_path("volumes", vol.id).split("/"))
    doc = json.loads(path.read_text())
    for name in ("metadata", "admin_metadata", "glance_metadata"):
        doc.pop(name, None)
    path.write_text(json.dumps(doc))
    [read] = fresh().get_volumes(volume_id=vol.id)
    assert (read.metadata, read.admin_metadata, read.name) == ({}, {}, "data")


# -- soft deletes --------------------------------------------------------------

def volume_with_snapshot(cinderlib_setup, folder, soft: bool):
    """(plugin, backend, volume, its snapshot), saved, with soft_deletes=`soft`."""
    plugin = cinderlib_setup(persistence_config={"storage": "file", "path": str(folder),
                                                 "soft_deletes": soft})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    snap = cinderlib.Snapshot(vol, name="snap")
    snap.save()
    return plugin, backend, vol, snap


@pytest.mark.parametrize("soft", [False, True])
def test_soft_deletes(cinderlib_setup, folder, fresh, soft):
    plugin, backend, vol, snap = volume_with_snapshot(cinderlib_setup, folder, soft)
    conn = cinderlib.Connection(backend, volume=vol, connection_info={"conn": {"data": {}}})
    conn.save()
    plugin.delete_connection(conn)
    plugin.delete_snapshot(snap)
    plugin.delete_volume(vol)
    assert vol.deleted and vol.status == "deleted"      # as cinderlib's base sets them

    for reader in (plugin, fresh()):
        assert reader.get_volumes() == reader.get_volumes(volume_id=vol.id) == []
        assert reader.get_volumes(volume_name="data") == []
        assert reader.get_volumes(backend_name="fake") == []
        assert reader.get_snapshots() == reader.get_snapshots(volume_id=vol.id) == []
        assert reader.get_connections() == reader.get_connections(volume_id=vol.id) == []
    kept = {type: plugin.store.all(type) for type in ("volumes", "snapshots", "connections")}
    if not soft:
        assert kept == {"volumes": [], "snapshots": [], "connections": []}
        return
    [vdoc], [sdoc], [cdoc] = kept.values()
    assert (vdoc["deleted"], vdoc["status"], vdoc["display_name"]) == (True, "deleted", "data")
    assert (sdoc["deleted"], sdoc["status"]) == (True, "deleted")
    assert (cdoc["deleted"], cdoc["attach_status"]) == (True, "deleted")
    assert all(doc["deleted_at"].endswith("Z") for doc in (vdoc, sdoc, cdoc))


# -- a new process reads what the last one left ----------------------------------

def test_snapshots_and_connections_after_one_was_deleted(plugin, backend, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    snaps = [cinderlib.Snapshot(vol, name=f"s{i}") for i in range(3)]
    conns = [cinderlib.Connection(backend, volume=vol, connection_info={"conn": {"data": {}}})
             for _ in range(3)]
    for resource in snaps + conns:
        resource.save()
    plugin.delete_snapshot(snaps[1])
    plugin.delete_connection(conns[0])

    [again] = fresh().get_volumes(volume_id=vol.id)
    assert sorted(s.id for s in again.snapshots) == sorted([snaps[0].id, snaps[2].id])
    assert sorted(c.id for c in again.connections) == sorted([conns[1].id, conns[2].id])
    assert all(s.volume is again for s in again.snapshots)
    assert sorted(fields_of(s) == fields_of(t) for s in again.snapshots
                  for t in snaps if s.id == t.id) == [True, True]


def test_volume_types_with_extra_and_qos_specs(plugin, backend, fresh):
    vols = [cinderlib.Volume(backend, size=1, name="both", extra_specs={"k": "v"},
                             qos_specs={"q": "r"}),
            cinderlib.Volume(backend, size=1, name="extra", extra_specs={"k": "v"}),
            cinderlib.Volume(backend, size=1, name="qos", qos_specs={"q": "r"}),
            cinderlib.Volume(backend, size=1, name="none")]
    for vol in vols:
        vol.save()
    reader = fresh()
    for vol in vols:
        [again] = reader.get_volumes(volume_id=vol.id)
        assert fields_of(again) == fields_of(vol)
        if vol.volume_type is None:
            assert again.volume_type is None
            continue
        assert persistence_base.vol_type_to_dict(again.volume_type) == \
            persistence_base.vol_type_to_dict(vol.volume_type)
        assert reader.db.volume_type_get(None, vol.id) == \
            persistence_base.vol_type_to_dict(vol.volume_type)


def test_admin_metadata(plugin, backend, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data", admin_metadata={"a": "1", "b": "2"})
    vol.save()
    plugin.db._volume_admin_metadata_update(None, vol.id, {"b": "3", "c": "4"}, delete=False)
    plugin.db.volume_admin_metadata_delete(None, vol.id, "a")
    reader = fresh()
    assert reader.db._volume_admin_metadata_get(None, vol.id) == {"b": "3", "c": "4"}


def test_fields_changed_and_saved_after_creation(plugin, backend, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data", metadata={"a": "1"})
    vol.save()
    vol._ovo.status = "available"
    vol._ovo.size = 5
    vol._ovo.provider_location = "pool/vol-1"
    vol._ovo.display_description = None
    vol.metadata["b"] = "2"          # changed in place: cinderlib does not track it
    vol.save()
    snap = cinderlib.Snapshot(vol, name="snap")
    snap.save()
    snap._ovo.status = "available"
    snap.save()
    conn = cinderlib.Connection(backend, volume=vol, connection_info={"conn": {"data": {}}})
    conn.save()
    conn.device = {"path": "/dev/sdx", "type": "block"}
    conn.save()

    reader = fresh()
    [vol2] = reader.get_volumes(volume_id=vol.id)
    assert fields_of(vol2) == fields_of(vol)
    assert vol2.metadata == {"a": "1", "b": "2"} and vol2.size == 5
    [snap2] = reader.get_snapshots(snapshot_id=snap.id)
    assert fields_of(snap2) == fields_of(snap)
    [conn2] = reader.get_connections(connection_id=conn.id)
    assert conn2.path == "/dev/sdx"
    assert conn2.connection_info == conn.connection_info


def test_reading_needs_no_initialised_backend(plugin, backend, cinderlib_setup, folder):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    cinderlib.Snapshot(vol, name="snap").save()
    cinderlib.Connection(backend, volume=vol, connection_info={"conn": {"data": {}}}).save()
    # As a monitor or a CLI would: setup() only, no Backend, cinderlib's
    # default fail_on_missing_backend=True.
    plugin.close()
    cinderlib.Backend.backends = {}
    reader = cinderlib_setup(persistence_config={"storage": "file", "path": str(folder)})
    [vol2] = reader.get_volumes()
    [snap2] = reader.get_snapshots()
    [conn2] = reader.get_connections()
    assert (vol2.id, vol2.backend) == (vol.id, "fake")
    assert (snap2.volume_id, snap2.backend) == (vol.id, "fake")
    assert [s.backend for s in vol2.snapshots] == ["fake"]
    assert conn2.volume.id == vol.id and conn2.backend == "fake"
    assert reader.get_volumes(backend_name="fake")[0].id == vol.id


def test_key_values(plugin, fresh):
    plugin.set_key_value(cinderlib.KeyValue("a", "1"))
    plugin.set_key_value(cinderlib.KeyValue("b/../weird key", "2"))
    plugin.set_key_value(cinderlib.KeyValue("a", "3"))
    plugin.delete_key_value(cinderlib.KeyValue("missing"))
    assert fresh().get_key_values() == [cinderlib.KeyValue("a", "3"),
                                        cinderlib.KeyValue("b/../weird key", "2")]
    plugin.delete_key_value(cinderlib.KeyValue("a"))
    assert fresh().get_key_values(key="a") == []


# -- concurrent saves -------------------------------------------------------------

def describe_from_another_process(fresh, vol) -> None:
    """A new plugin instance (another process) changes the volume's description."""
    another = fresh()
    [other] = another.get_volumes(volume_id=vol.id)
    other._ovo.display_description = "from another process"
    another.set_volume(other)       # not other.save(): that is cinderlib's global plugin


def test_stale_objects_merge_their_tracked_changes(plugin, backend, fresh):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    describe_from_another_process(fresh, vol)
    vol._ovo.status = "available"
    vol.save()                                  # stale: only status is applied
    [now] = plugin.get_volumes(volume_id=vol.id)
    assert (now.status, now.display_description) == ("available", "from another process")
    vol._ovo.size = 3
    vol.save()                                  # still behind: merges again
    [now] = plugin.get_volumes(volume_id=vol.id)
    assert (now.size, now.display_description) == (3, "from another process")


@pytest.mark.parametrize("soft", [False, True])
def test_a_stale_save_never_brings_back_a_deleted_record(cinderlib_setup, folder, fresh, soft):
    """As the db plugin's UPDATE: saving an object whose record another
    process deleted raises cinder's NotFound, and the record stays gone."""
    from cinder import exception
    plugin, backend, vol, snap = volume_with_snapshot(cinderlib_setup, folder, soft)
    other = fresh(soft_deletes=soft)
    [other_snap] = other.get_snapshots(snapshot_id=snap.id)
    other.delete_snapshot(other_snap)
    [other_vol] = other.get_volumes(volume_id=vol.id)
    other.delete_volume(other_vol)
    vol._ovo.status = "error"
    with pytest.raises(exception.VolumeNotFound):
        vol.save()
    snap._ovo.status = "error"
    with pytest.raises(exception.SnapshotNotFound):
        snap.save()
    assert plugin.get_volumes() == [] and plugin.get_snapshots() == []
    assert fresh().get_volumes() == []
    # and once this process deleted it too, saving it again fails the same way
    new = cinderlib.Volume(backend, size=1, name="new")
    new.save()
    plugin.delete_volume(new)
    with pytest.raises(exception.VolumeNotFound):
        new.save()


def test_a_save_after_another_process_wrote_merges_even_with_no_watcher(
        cinderlib_setup, folder, fresh):
    """watch="off" (eventlet processes): the cache never hears of the other
    write, but the failed first attempt refreshes it and the save merges."""
    plugin = cinderlib_setup(persistence_config={"storage": "file", "path": str(folder),
                                                 "watch": "off"})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    describe_from_another_process(fresh, vol)
    vol._ovo.status = "available"
    vol.save()
    [now] = fresh().get_volumes(volume_id=vol.id)
    assert (now.status, now.display_description) == ("available", "from another process")
    assert plugin.get_volumes(volume_id=vol.id)[0].display_description == \
        "from another process"


def test_concurrent_threads_lose_no_change(plugin, backend):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    changes = {"display_name": "renamed", "display_description": "d", "size": 7,
               "provider_location": "loc", "provider_id": "pid", "status": "available",
               "previous_status": "creating", "migration_status": "none"}
    copies = [plugin.get_volumes(volume_id=vol.id)[0] for _ in changes]
    new = [cinderlib.Volume(backend, size=1, name=f"new{i}") for i in range(8)]
    barrier = threading.Barrier(len(changes) + len(new))
    errors = []

    def change(copy, field, value):
        try:
            barrier.wait()
            setattr(copy._ovo, field, value)
            copy.save()
        except Exception as exc:    # reported below
            errors.append(exc)

    def create(volume):
        try:
            barrier.wait()
            volume.save()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=change, args=(copy, *item))
               for copy, item in zip(copies, changes.items())]
    threads += [threading.Thread(target=create, args=(volume,)) for volume in new]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    doc = plugin.store.get("volumes", vol.id)
    assert {field: doc[field] for field in changes} == changes
    assert len(plugin.get_volumes()) == 1 + len(new)



@pytest.mark.slow
def test_concurrent_processes_lose_no_change(plugin, backend, folder, tmp_path):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    plugin.close()
    fields = {"display_description": "d", "provider_location": "loc",
              "provider_id": "pid", "migration_status": "m"}
    go = tmp_path / "go"
    worker = """
        import os, sys, time
        import cinderlib
        store, locks, go, vid, field, value = sys.argv[1:]
        cinderlib.setup(file_locks_path=locks,
                        persistence_config={"storage": "file", "path": store})
        [vol] = cinderlib.Backend.persistence.get_volumes(volume_id=vid)
        open(f"{go}-{field}", "w").close()          # ready
        while not os.path.exists(go):
            time.sleep(0.005)
        for i in range(20):
            setattr(vol._ovo, field, f"{value}{i}")
            vol.save()
    """
    procs = [start_python(worker, str(folder), str(tmp_path / "locks"), str(go),
                          vol.id, field, value) for field, value in fields.items()]
    eventually(lambda: any(proc.poll() is not None for proc in procs) or all(
        tmp_path.joinpath(f"go-{field}").exists() for field in fields), timeout=120)
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with Store(folder, watch="off") as store:
        doc = store.get("volumes", vol.id)
    assert {field: doc.get(field) for field in fields} == {
        field: f"{value}19" for field, value in fields.items()}
