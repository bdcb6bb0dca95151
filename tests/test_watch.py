"""The cache follows changes made behind the store's back (other processes,
git, hand edits) through the watcher."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
from helpers import eventually, run_python

from gitpersist import Store, paths

WRITER = """
import sys
from gitpersist import Store
with Store(sys.argv[1], watch="off") as s:
    s.put("volumes", "new", {"display_name": "n"})
    s.put("volumes", "changed", {"display_name": "after"})
    s.delete("volumes", "gone")
"""


def names(store):
    return {d["id"]: d.get("display_name") for d in store.find("volumes")}


@pytest.fixture(params=["native", "polling"])
def watched(request, tmp_path):
    with Store(tmp_path, watch=request.param, poll_interval=0.1,
               indexes={"volumes": {"display_name": None}}) as store:
        store.put("volumes", "changed", {"display_name": "before"})
        store.put("volumes", "gone", {"display_name": "g"})
        assert names(store) == {"changed": "before", "gone": "g"}    # cache warm
        yield store


def test_other_process_writes_reach_the_cache(watched):
    run_python(WRITER, watched.root)
    assert eventually(lambda: names(watched) == {"changed": "after", "new": "n"})
    assert [d["id"] for d in watched.find("volumes", display_name="after")] == ["changed"]
    assert watched.find("volumes", display_name="before") == []
    assert watched.get("volumes", "gone") is None


def path_of(store, id):
    return os.path.join(store.root, *paths.record_path("volumes", id).split("/"))


def test_hand_edit_in_place_is_picked_up(watched):
    with open(path_of(watched, "changed"), "w") as f:      # an editor saving in place
        f.write('{"id": "changed", "display_name": "edited"}')
    assert eventually(lambda: watched.get("volumes", "changed")["display_name"] == "edited")
    assert [d["id"] for d in watched.find("volumes", display_name="edited")] == ["changed"]


def test_file_replaced_from_outside_is_picked_up(watched):
    target = path_of(watched, "changed")
    with open(target + ".new", "w") as f:
        f.write('{"id": "changed", "display_name": "replaced"}')
    os.replace(target + ".new", target)
    assert eventually(lambda: watched.get("volumes", "changed")["display_name"] == "replaced")


def test_type_folder_removed_from_outside(watched):
    shutil.rmtree(os.path.join(watched.root, "volumes"))
    assert eventually(lambda: watched.find("volumes") == [])
    watched.put("volumes", "again", {"display_name": "a"})
    assert names(watched) == {"again": "a"}


def test_corrupting_edit_is_reported_not_cached(watched):
    with open(path_of(watched, "changed"), "w") as f:
        f.write("{ torn")
    assert eventually(lambda: "changed" not in names(watched))
    assert names(watched) == {"gone": "g"}


def test_lost_events_invalidate_everything(tmp_path):
    with Store(tmp_path, watch="native") as store:
        store.put("volumes", "a", {"v": 1})
        assert store.all("volumes")[0]["v"] == 1
        store._watcher._observer.stop()              # from now on, no events arrive
        store._watcher._observer.join()
        # what arrived before the stop (the type folder's creation, late on
        # a busy machine) is applied now, not after the hand edit below
        assert store.all("volumes")[0]["v"] == 1
        with open(path_of(store, "a"), "w") as f:
            f.write('{"id": "a", "v": 2}')
        assert store.all("volumes")[0]["v"] == 1     # stale: nobody told us
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost")
        assert store.all("volumes")[0]["v"] == 2


def test_close_stops_the_watcher_thread(tmp_path):
    import threading
    before = threading.active_count()
    store = Store(tmp_path, watch="native")
    store.put("t", "x", {})
    store.close()
    assert threading.active_count() <= before
