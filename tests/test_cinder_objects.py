"""gitpersist.cinder.objects: templates that clone an object graph sharing
nothing mutable, and the bounded object cache that follows the store."""

from __future__ import annotations

import pytest

from helpers import CINDERLIB_MISSING

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

from cinder import objects as cinder_objs  # noqa: E402
from cinderlib import objects as cl_objects  # noqa: E402

from gitpersist import Store  # noqa: E402
from gitpersist.cinder.objects import ObjectCache, Template  # noqa: E402

SID, TID = "3f2a9c1e-0000-4000-8000-000000000001", "3f2a9c1e-0000-4000-8000-000000000002"


def snapshot_list():
    snap = cinder_objs.Snapshot(context=cl_objects.CONTEXT, id=SID, metadata={"a": "1"},
                                display_name="x")
    listed = cinder_objs.SnapshotList(context=cl_objects.CONTEXT, objects=[snap])
    snap.obj_reset_changes()
    return listed


def test_a_clone_shares_nothing_mutable_and_keeps_its_cycles():
    root = snapshot_list()
    root.objects[0].nested = {"deep": {"list": [1, {"x": 2}]}}     # not a field: plain data
    template = Template(root)
    root.objects[0].metadata["a"] = "changed after"                   # the template is frozen
    one, two = template.clone(), template.clone()
    assert one is not two and one.objects is not two.objects
    assert type(one.objects).__name__ == "CoercedList"
    assert one.objects[0].metadata == {"a": "1"}
    one.objects[0].metadata["a"] = "2"
    one.objects[0].nested["deep"]["list"][1]["x"] = 3
    one.objects[0]._changed_fields.add("metadata")
    one.objects.append(cinder_objs.Snapshot(context=cl_objects.CONTEXT, id=TID))
    assert two.objects[0].metadata == {"a": "1"}
    assert two.objects[0].nested == {"deep": {"list": [1, {"x": 2}]}}
    assert two.objects[0]._changed_fields == set() and len(two.objects) == 1
    assert template.clone().objects[0].metadata == {"a": "1"}
    # the coerced list still coerces, and points at its own list object
    assert two.objects._obj is two
    with pytest.raises(ValueError):
        two.objects.append("not a snapshot")


def test_a_value_of_an_unknown_kind_refuses_the_template():
    snap = cinder_objs.Snapshot(context=cl_objects.CONTEXT, id=SID)
    snap.odd = object()
    with pytest.raises(TypeError, match="cannot clone 'odd'"):
        Template(snap)


def test_the_cache_keeps_the_revision_it_was_given_and_a_bounded_number():
    cache = ObjectCache(2)
    cache.put("volumes", "a", "r1", "A1")
    assert cache.get("volumes", "a", "r1") == "A1"
    assert cache.get("volumes", "a", "r2") is None
    cache.put("volumes", "b", "r1", "B")
    cache.get("volumes", "a", "r1")         # a used last: b goes first
    cache.put("volumes", "c", "r1", "C")
    assert cache.get("volumes", "b", "r1") is None
    assert cache.get("volumes", "a", "r1") == "A1"
    stats = cache.stats()
    assert (stats.size, stats.bound, stats.evicted, stats.hits, stats.misses) == (2, 2, 1, 3, 2)
    assert stats.hit_ratio == 3 / 5
    empty = ObjectCache(0)
    empty.put("volumes", "a", "r", "A")
    assert empty.get("volumes", "a", "r") is None and empty.stats().size == 0


def test_the_cache_drops_what_the_store_reports_changed(tmp_path):
    with Store(tmp_path / "s", fsync=False, watch="off") as store, \
            Store(tmp_path / "s", fsync=False, watch="off") as other:
        cache = ObjectCache(10)
        store.subscribe(cache)
        revision = store.put("volumes", "a", {"n": 1})
        store.put("volumes", "b", {"n": 1})
        cache.put("volumes", "a", revision, "A")
        cache.put("volumes", "b", store.revision("volumes", "b"), "B")
        other.put("volumes", "a", {"n": 2})
        other.delete("volumes", "b")
        assert [doc["n"] for doc in store.all("volumes")] == [2]      # the store reads them
        assert cache.stats().size == 0
        cache.put("volumes", "a", store.revision("volumes", "a"), "A2")
        store.changed("volumes/")        # a whole type folder: every record of it
        assert store.get("volumes", "a") == {"id": "a", "n": 2}
        assert cache.get("volumes", "a", store.revision("volumes", "a")) == "A2"   # unchanged
        other.put("volumes", "a", {"n": 3})
        store.changed("volumes/")
        assert store.get("volumes", "a")["n"] == 3
        assert cache.stats().size == 0      # read again, changed: dropped


def test_the_store_tells_revisions_without_decoding(tmp_path):
    with Store(tmp_path / "s", fsync=False, indexes={"volumes": {"name": None}}) as store:
        ra = store.put("volumes", "a", {"name": "x"})
        rb = store.put("volumes", "b", {"name": "x"})
        store.put("volumes", "c", {"name": "y"})
        assert store.revisions("volumes", name="x") == [("a", ra), ("b", rb)]
        assert [id for id, _ in store.revisions("volumes")] == ["a", "b", "c"]
        assert store.get_with_revision("volumes", "a") == ({"id": "a", "name": "x"}, ra)
        assert store.get_with_revision("volumes", "nope") is None


def test_the_collector_is_paused_while_clones_are_made_and_restored_after():
    import gc
    from gitpersist.cache import gc_paused
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()       # the outer block still runs
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()       # off before: left off
    finally:
        gc.enable()
