"""The plugin's reads (gitpersist.cinder.reads): what cinderlib's plain build
returns, object by object; every object the caller's own; other processes'
saves read at once; the object cache bounded and counted."""

from __future__ import annotations

import datetime

import pytest

from helpers import CINDERLIB_MISSING

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

import cinderlib  # noqa: E402
from cinder import objects as cinder_objs  # noqa: E402
from cinderlib import objects as cl_objects  # noqa: E402
from cinderlib.tests.unit import utils as cl_utils  # noqa: E402

from gitpersist import ConfigError  # noqa: E402
from gitpersist.cinder import records  # noqa: E402
from gitpersist.cinder.plugin import FilePersistence  # noqa: E402
from gitpersist.cinder.reads import REVISION  # noqa: E402

_VALUES = (str, int, float, bool, type(None), bytes, datetime.datetime)


def same_graph(a, b, pairs=None, where="root"):
    """`a` and `b` are the same object graph: the same classes, the same
    attributes, equal plain values, and the same sharing (an object met
    twice in one is met twice, at the same places, in the other)."""
    pairs = {} if pairs is None else pairs
    if isinstance(a, _VALUES) or type(a).__module__.startswith(("cinder.context",
                                                                "oslo_versionedobjects.fields")):
        assert a == b, where
        return
    if id(a) in pairs:
        assert pairs[id(a)] is b, f"{where}: shared differently"
        return
    pairs[id(a)] = b
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, cinderlib.Backend):
        assert a is b, where
        return
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            same_graph(a[key], b[key], pairs, f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same_graph(x, y, pairs, f"{where}[{i}]")
    elif isinstance(a, (set, frozenset)):
        assert a == b, where
    if hasattr(a, "__dict__"):
        same_graph(vars(a), vars(b), pairs, f"{where}.__dict__")


def plain_volume(plugin, volume_id):
    """A volume as cinderlib's constructors build it from the records (the
    plugin's way before its object cache): the reference."""
    store = plugin.store
    doc = store.get("volumes", volume_id)
    ovo = records.volume_from_record(doc, "x")
    snapshots = store.find("snapshots", volume_id=volume_id)
    connections = store.find("connections", volume_id=volume_id)
    snapshot_ovos = []
    for snap in snapshots:
        snap_ovo = records.ovo_from_record(cinder_objs.Snapshot, snap, "x")
        snap_ovo.cgsnapshot = snap_ovo.group_snapshot = None
        snap_ovo.obj_reset_changes()
        snapshot_ovos.append(snap_ovo)
    ovo.snapshots = cinder_objs.SnapshotList(context=cl_objects.CONTEXT, objects=snapshot_ovos)
    ovo.volume_attachment = cinder_objs.VolumeAttachmentList(
        context=cl_objects.CONTEXT, objects=[
            records.ovo_from_record(cinder_objs.VolumeAttachment, conn, "x")
            for conn in connections])
    for field in ("cluster", "consistencygroup", "group"):
        setattr(ovo, field, None)
    ovo.obj_reset_changes()
    volume = cl_objects.Volume(cinderlib.Backend.backends["fake"], __ovo=ovo)
    for resource, record in [(volume, doc), *zip(volume._snapshots, snapshots),
                             *zip(volume._connections, connections)]:
        type = ("volumes" if resource is volume else "snapshots"
                if isinstance(resource, cl_objects.Snapshot) else "connections")
        setattr(resource, REVISION, store.revision_of(type, record))
    return volume


@pytest.fixture
def plugin(cinderlib_setup, tmp_path):
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(tmp_path / "store"), "fsync": False})
    cl_utils.FakeBackend(volume_backend_name="fake")
    return persistence


def full_volume(backend):
    """A volume with everything a read rebuilds: a type with extra and QoS
    specs, metadata, a snapshot and a connection."""
    vol = cinderlib.Volume(backend, size=2, name="data", extra_specs={"k": "v"},
                           qos_specs={"iops": "100"}, metadata={"m": "1"})
    vol.save()
    cinderlib.Snapshot(vol, name="snap").save()
    vol.kept_connection = cinderlib.Connection(backend, volume=vol, connection_info={
        "conn": {"driver_volume_type": "iscsi", "data": {"target_lun": 1}},
        "connector": {"host": "node1"}})
    vol.kept_connection.save()
    return vol


@pytest.mark.parametrize("cache", [10_000, 0])
def test_a_read_is_what_the_plain_build_makes(cinderlib_setup, tmp_path, cache):
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(tmp_path / "store"), "fsync": False,
        "object_cache": cache})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vol = full_volume(backend)
    for _ in range(2):      # the first read after the saves, then a warm one
        [read] = persistence.get_volumes(volume_id=vol.id)
        same_graph(read, plain_volume(persistence, vol.id))
        assert [s.name for s in read.snapshots] == ["snap"]
        assert read.connections[0].volume is read
        assert read.volume_type.qos_specs.specs == {"iops": "100"}
    [listed] = persistence.get_volumes()
    same_graph(listed, plain_volume(persistence, vol.id))


def test_every_object_a_read_returns_is_the_callers_own(plugin):
    backend = cinderlib.Backend.backends["fake"]
    vol = full_volume(backend)
    first = plugin.get_volumes(volume_id=vol.id)[0]
    first._ovo.metadata["m"] = "changed"
    first._ovo.status = "error"
    first.volume_type.extra_specs["k"] = "changed"
    first.volume_type.qos_specs.specs["iops"] = "1"
    first.snapshots[0]._ovo.display_name = "changed"
    first.snapshots.append("junk")
    first._ovo.snapshots.objects.clear()
    first.connections[0]._ovo.connection_info["conn"]["data"]["target_lun"] = 9
    first._ovo.obj_reset_changes()
    for read in (plugin.get_volumes(volume_id=vol.id)[0], plugin.get_volumes()[0],
                 plugin.get_volumes(volume_name="data")[0]):
        assert read is not first
        assert read._ovo.metadata == {"m": "1"} and read.status == vol.status
        assert read.volume_type.extra_specs == {"k": "v"}
        assert read.volume_type.qos_specs.specs == {"iops": "100"}
        assert [s.name for s in read.snapshots] == ["snap"]
        assert len(read._ovo.snapshots.objects) == 1
        assert read.connections[0]._ovo.connection_info["conn"]["data"]["target_lun"] == 1
    [snap] = plugin.get_snapshots(volume_id=vol.id)
    snap._ovo.metadata["x"] = "y"
    assert plugin.get_snapshots(volume_id=vol.id)[0]._ovo.metadata == {}


def test_the_saved_object_changing_after_its_save_changes_no_read(plugin):
    backend = cinderlib.Backend.backends["fake"]
    vol = full_volume(backend)
    conn = vol.kept_connection
    conn._ovo.connection_info["conn"]["data"]["target_lun"] = 7     # not saved
    vol._ovo.metadata["m"] = "not saved"
    [read] = plugin.get_volumes(volume_id=vol.id)
    assert read._ovo.metadata == {"m": "1"}
    assert read.connections[0]._ovo.connection_info["conn"]["data"]["target_lun"] == 1


def test_another_processs_save_is_read_at_the_next_read(plugin, tmp_path):
    backend = cinderlib.Backend.backends["fake"]
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol.save()
    assert plugin.get_volumes(volume_id=vol.id)[0].size == 1       # kept in the cache
    other = FilePersistence(path=str(tmp_path / "store"), watch="off", fsync=False)
    try:
        [theirs] = other.get_volumes(volume_id=vol.id)
        theirs._ovo.size = 5
        other.set_volume(theirs)
        cinderlib.Snapshot(theirs, name="theirs").save()
    finally:
        other.close()
    assert plugin.get_volumes(volume_id=vol.id)[0].size == 5
    assert plugin.get_volumes(volume_name="data")[0].size == 5
    assert [s.name for s in plugin.get_volumes()[0].snapshots] == ["theirs"]


def test_the_object_cache_is_bounded_and_counts_its_hits(cinderlib_setup, tmp_path):
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(tmp_path / "store"), "fsync": False,
        "object_cache": 2, "watch": "off"})     # (a folder's event drops the whole type)
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vols = [cinderlib.Volume(backend, size=1, name=f"v{i}") for i in range(4)]
    for vol in vols:
        vol.save()
    stats = persistence.stats()
    assert (stats.size, stats.bound) == (2, 2) and stats.evicted >= 1
    assert stats.hit_ratio is None
    for _ in range(3):
        persistence.get_volumes(volume_id=vols[3].id)
    stats = persistence.stats()
    assert (stats.hits, stats.misses, stats.hit_ratio) == (3, 0, 1.0)
    assert len(persistence.get_volumes()) == 4
    assert persistence.stats().size == 2


def test_object_cache_is_checked_naming_the_key(tmp_path):
    for bad in (-1, "10", True, 2.5):
        with pytest.raises(ConfigError, match="persistence_config 'object_cache'"):
            FilePersistence(path=str(tmp_path / "s"), object_cache=bad)
    assert not (tmp_path / "s").exists()
