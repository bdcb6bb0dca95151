"""The cache follows changes made behind the store's back (other processes,
git, hand edits) through the watcher."""

from __future__ import annotations

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


def checks_files_once_unwatched(store, tmp_path):
    """A hand edit and a hand-made record are seen though no event came."""
    with open(path_of(store, "a"), "w") as f:
        f.write('{"id": "a", "v": 2, "hand": "edit"}')
    assert store.get("volumes", "a")["v"] == 2
    new = tmp_path / paths.record_path("volumes", "b")
    new.parent.mkdir(exist_ok=True)
    new.write_text('{"id": "b"}')
    assert [d["id"] for d in store.all("volumes")] == ["a", "b"]


def test_a_watcher_that_died_is_noticed_and_reads_check_their_files(tmp_path, caplog):
    """Never silent staleness: once its thread is gone, a read checks its
    file (and a listing its folder), and the cause is logged once."""
    with Store(tmp_path, watch="polling", poll_interval=3600) as store:
        store.put("volumes", "a", {"v": 1})
        assert store.all("volumes")[0]["v"] == 1
        store._watcher._observer.stop()              # from now on, no events arrive
        store._watcher._observer.join()
        checks_files_once_unwatched(store, tmp_path)
    assert caplog.text.count("its thread is not running") == 1


def test_native_watching_runs_no_thread(tmp_path):
    """watch="native" reads inotify in the caller (gitpersist.inotify):
    another process's write is seen at once, with no thread of ours."""
    import threading
    before = set(threading.enumerate())
    with Store(tmp_path, watch="native") as store:
        store.put("volumes", "changed", {"display_name": "before"})
        store.put("volumes", "gone", {"display_name": "g"})
        assert names(store) == {"changed": "before", "gone": "g"}
        assert set(threading.enumerate()) == before
        run_python(WRITER, store.root)
        assert names(store) == {"changed": "after", "new": "n"}     # no waiting


def test_a_failed_inotify_read_is_noticed_and_reads_check_their_files(tmp_path, caplog):
    with Store(tmp_path, watch="native") as store:
        store.put("volumes", "a", {"v": 1})
        assert store.all("volumes")[0]["v"] == 1
        folder = os.open(tmp_path, os.O_RDONLY)      # read() on it fails: EISDIR
        os.dup2(folder, store._watcher._fd)
        os.close(folder)
        checks_files_once_unwatched(store, tmp_path)
    assert caplog.text.count("reading its events failed") == 1


def test_a_forked_child_leaves_the_parents_events_alone(tmp_path):
    """The inotify descriptor is shared across fork: a child reading it
    would take the events of its parent's hand edits.  The child checks
    its files instead, and the parent still sees the edit."""
    with Store(tmp_path, watch="native") as store:
        store.put("volumes", "a", {"v": 1})
        assert store.get("volumes", "a")["v"] == 1
        with open(path_of(store, "a"), "w") as f:
            f.write('{"id": "a", "v": 2}')
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(0 if store.get("volumes", "a")["v"] == 2 else 1)
            finally:
                os._exit(2)
        assert os.waitpid(pid, 0)[1] == 0
        assert store.get("volumes", "a")["v"] == 2


def test_lost_events_invalidate_everything(tmp_path, caplog):
    """A real inotify queue overflow (more events than
    fs.inotify.max_queued_events before the next read) forgets the cache."""
    class Heard:
        def __init__(self):
            self.events = []

        def stored(self, type, id, revision):
            pass

        removed = stored

        def invalidated(self, type):
            self.events.append(type)
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        queue = int(f.read())
    with Store(tmp_path, watch="native") as store:
        heard = Heard()
        store.subscribe(heard)
        store.put("volumes", "a", {"v": 1})
        assert store.all("volumes")[0]["v"] == 1
        pair = [os.path.join(store.root, "volumes", name) for name in ("x", "y")]
        for n in range(queue // 2 + 1):     # closed-after-write, two files: never merged
            for path in pair:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT))
        assert store.all("volumes")[0]["v"] == 1
        assert None in heard.events
    assert "overflowed" in caplog.text


def test_close_stops_the_watcher_thread(tmp_path):
    import threading
    before = threading.active_count()
    store = Store(tmp_path, watch="native")
    store.put("t", "x", {})
    store.close()
    assert threading.active_count() <= before
