"""The change feed (gitpersist.changefeed, `Store.changes`): exactly the
changes made, by this process, another process, a sync and a hand edit, in
order per record; resumable from any token; an expired token says so."""

from __future__ import annotations

import json
import os
import subprocess
import time
import sys

import pytest
from helpers import eventually, git, run_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_sync import clone, open_host

from gitpersist import ChangesExpired, Store, paths
from gitpersist.changelog import ChangeLog


def seen(changes) -> list[tuple]:
    return [(c.type, c.id, c.operation, c.revision) for c in changes]


def test_the_feed_returns_the_changes_made_in_order_and_resumes(tmp_path):
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        start = store.changes()
        assert len(start) == 0
        r1 = store.put("volumes", "v1", {"size": 1})
        r2 = store.put("volumes", "v1", {"size": 2})
        store.put("snapshots", "s1", {"volume_id": "v1"})
        store.delete("volumes", "v1")
        batch = store.changes(since=start.token)
        assert seen(batch)[:2] == [("volumes", "v1", "put", r1), ("volumes", "v1", "put", r2)]
        assert seen(batch)[2][:3] == ("snapshots", "s1", "put")
        assert seen(batch)[3] == ("volumes", "v1", "delete", None)
        assert len(store.changes(since=batch.token)) == 0
        for n, change in enumerate(batch):          # any token handed out resumes after it
            assert seen(store.changes(since=change.token)) == seen(batch)[n + 1:]


def test_another_process_a_hand_edit_and_a_sync_are_in_the_feed(tmp_path):
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        token = store.changes().token
        run_python("""
            import sys
            from gitpersist import Store
            with Store(sys.argv[1], watch="off", fsync=False) as other:
                other.put("volumes", "v9", {"by": "other"})
            """, str(tmp_path / "s"))
        relpath = paths.record_path("volumes", "v9")
        (tmp_path / "s" / relpath).write_text('{"id": "v9", "by": "hand"}\n')
        store.changed(relpath)
        store.changed(relpath)                          # reported twice: one change
        batch = store.changes(since=token)
        assert [(c.id, c.operation) for c in batch] == [("v9", "put"), ("v9", "put")]
        assert batch.changes[1].revision == store.revision("volumes", "v9")
        assert store.get("volumes", "v9")["by"] == "hand"


@pytest.mark.usefixtures("no_git_identity")
def test_a_sync_received_record_is_in_the_feed_with_its_revision(tmp_path):
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "remote.git"))
    a, b = clone(tmp_path / "remote.git", "a"), clone(tmp_path / "remote.git", "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        store_b.sync()
        token = store_b.changes().token
        revision = store_a.put("volumes", "v1", {"size": 1})
        store_a.sync()
        store_b.sync()
        assert seen(store_b.changes(since=token)) == [("volumes", "v1", "put", revision)]


def test_a_rotated_log_expires_old_tokens_with_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ChangeLog, "MAX_SIZE", 400)
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        token = store.changes().token
        for n in range(10):                     # past 400 bytes: a new log
            store.put("volumes", f"v{n}", {"n": n})
        with pytest.raises(ChangesExpired, match="expired.*list again"):
            store.changes(since=token)
        fresh = store.changes().token
        store.put("volumes", "w", {})
        assert seen(store.changes(since=fresh))[0][:3] == ("volumes", "w", "put")
        for bad in ("nonsense", fresh.rpartition(".")[0] + ".3", "abc.12"):
            with pytest.raises(ChangesExpired, match="list again"):
                store.changes(since=bad)


def test_a_log_replaced_by_a_new_empty_one_is_not_read_as_the_old(tmp_path):
    """A new log may get the old one's inode: the header's id tells them apart."""
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        store.put("volumes", "v1", {})
        token = store.changes().token
    log = tmp_path / "s" / ".gitpersist" / "changes"
    os.unlink(log)
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        store.put("volumes", "v2", {})
        store.put("volumes", "v3", {})
        with pytest.raises(ChangesExpired):
            store.changes(since=token)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["put", "delete"]), st.sampled_from("abc"),
                          st.integers(0, 3)), max_size=15), st.integers(0, 15))
def test_any_sequence_of_writes_is_the_feed_and_every_token_resumes(tmp_path_factory, ops, cut):
    root = tmp_path_factory.mktemp("feed")
    with Store(root, watch="off", fsync=False) as store:
        token = store.changes().token
        made = []
        for op, id, value in ops:
            if op == "put":
                made.append(("volumes", id, "put", store.put("volumes", id, {"v": value})))
            elif store.delete("volumes", id):
                made.append(("volumes", id, "delete", None))
        batch = store.changes(since=token)
        assert seen(batch) == made
        cut = min(cut, len(batch))
        resume = batch.changes[cut - 1].token if cut else token
        assert seen(store.changes(since=resume)) == made[cut:]


def test_gitpersist_watch_prints_changes_as_they_happen(tmp_path):
    root = tmp_path / "s"
    Store(root, watch="off").close()
    watch = subprocess.Popen([sys.executable, "-m", "gitpersist", "--path", str(root),
                              "watch", "volumes", "--json", "--interval", "0.05"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "watching" in watch.stderr.readline()        # it has its token
        with Store(root, watch="off", fsync=False) as store:
            store.put("snapshots", "s1", {})                # another type: not shown
            first = store.put("volumes", "v1", {"size": 1})
            store.delete("volumes", "v1")
        lines = [json.loads(watch.stdout.readline()) for _ in range(2)]
        assert [(c["type"], c["id"], c["operation"], c["revision"]) for c in lines] == [
            ("volumes", "v1", "put", first), ("volumes", "v1", "delete", None)]
        with Store(root, watch="off", fsync=False) as store:      # resumable from its tokens
            assert seen(store.changes(since=lines[0]["token"])) == [
                ("volumes", "v1", "delete", None)]
    finally:
        watch.terminate()
        watch.wait(30)


# -- store.subscribe(callback): every change this process's cache learns of ---------------

def subscribe(store) -> list[tuple]:
    heard: list[tuple] = []
    store.subscribe(lambda event: heard.append(
        (event.type, event.id, event.operation, event.revision)))
    return heard


def test_a_subscriber_hears_this_process_puts_and_deletes_as_they_happen(tmp_path):
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        store.put("volumes", "old", {})
        heard = subscribe(store)
        r1 = store.put("volumes", "v1", {"size": 1})
        assert heard == [("volumes", "v1", "put", r1)]             # at once, not at a read
        r2 = store.put("volumes", "v1", {"size": 2})
        store.put("volumes", "v1", {"size": 2})                     # the same record again
        assert store.delete("volumes", "v1")
        assert not store.delete("volumes", "never")                 # nothing removed
        store.get("volumes", "old")                                 # a read is no change
        store.all("volumes")
        assert heard == [("volumes", "v1", "put", r1), ("volumes", "v1", "put", r2),
                         ("volumes", "v1", "delete", None)]


@pytest.mark.parametrize("watch", ["off", "native"])
def test_a_subscriber_tells_another_process_put_from_its_delete(tmp_path, watch):
    """The cache drops both entries alike (its listeners hear `removed`
    twice); a subscriber hears a put with its revision and a delete."""
    root = tmp_path / "s"
    with Store(root, watch=watch, fsync=False) as store:
        store.put("volumes", "v1", {"n": 1})
        store.put("volumes", "v2", {"n": 1})
        heard = subscribe(store)
        out = run_python("""
            import sys
            from gitpersist import Store
            with Store(sys.argv[1], watch="off", fsync=False) as other:
                print(other.put("volumes", "v1", {"n": 2}))
                other.delete("volumes", "v2")
                print(other.put("volumes", "v1", {"n": 3}))
            """, str(root))
        r2, r3 = out.stdout.split()
        assert store.get("volumes", "v1") == {"id": "v1", "n": 3}      # learned at this read
        assert heard == [("volumes", "v1", "put", r2), ("volumes", "v2", "delete", None),
                         ("volumes", "v1", "put", r3)]
        time.sleep(0.3)             # the watcher's events of the same changes, if any ...
        store.all("volumes")
        assert len(heard) == 3      # ... are not heard again


@pytest.mark.usefixtures("no_git_identity")
def test_a_subscriber_hears_what_a_sync_received(tmp_path):
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "remote.git"))
    a, b = clone(tmp_path / "remote.git", "a"), clone(tmp_path / "remote.git", "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        store_a.put("volumes", "gone", {})
        store_a.sync()
        store_b.sync()
        heard = subscribe(store_b)
        revision = store_a.put("volumes", "v1", {"size": 1})
        store_a.delete("volumes", "gone")
        store_a.sync()
        store_b.sync()
        store_b.get("volumes", "v1")
        assert sorted(heard) == [("volumes", "gone", "delete", None),
                                 ("volumes", "v1", "put", revision)]


def write_by_hand(root, relpath: str, text: str) -> None:
    """A hand edit done atomically (a reader never sees half of it)."""
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    (root / "edit.tmp").write_text(text)
    os.replace(root / "edit.tmp", path)


def test_a_subscriber_hears_a_hand_edit_reported_with_changed(tmp_path):
    root = tmp_path / "s"
    with Store(root, watch="off", fsync=False) as store:
        store.put("volumes", "v1", {"by": "store"})
        heard = subscribe(store)
        relpath = paths.record_path("volumes", "v1")
        write_by_hand(root, relpath, '{"id": "v1", "by": "hand"}\n')
        store.changed(relpath)
        store.changed(relpath)                          # reported twice: heard once
        assert store.get("volumes", "v1")["by"] == "hand"
        os.unlink(root / relpath)
        store.changed(relpath)
        assert store.find("volumes") == []
        assert heard[0][:3] == ("volumes", "v1", "put")
        assert heard[1:] == [("volumes", "v1", "delete", None)]


def test_a_subscriber_hears_a_hand_edit_the_watcher_sees(tmp_path):
    root = tmp_path / "s"
    with Store(root, watch="native", fsync=False) as store:
        store.put("volumes", "v1", {"by": "store"})
        heard = subscribe(store)
        write_by_hand(root, paths.record_path("volumes", "v1"), '{"id": "v1", "by": "hand"}\n')
        assert eventually(lambda: store.get("volumes", "v1")["by"] == "hand" and heard)
        assert heard == [("volumes", "v1", "put", store.revision("volumes", "v1"))]


def test_cache_listeners_and_callbacks_subscribe_side_by_side(tmp_path):
    class Listener:
        def __init__(self):
            self.events = []

        def stored(self, type, id, revision):
            self.events.append(("stored", id))

        def removed(self, type, id):
            self.events.append(("removed", id))

        def invalidated(self, type):
            self.events.append(("invalidated", type))
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        listener = Listener()
        store.subscribe(listener)
        heard = subscribe(store)
        revision = store.put("volumes", "v1", {})
        store.delete("volumes", "v1")
        assert listener.events == [("stored", "v1"), ("removed", "v1")]
        assert heard == [("volumes", "v1", "put", revision), ("volumes", "v1", "delete", None)]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(["put", "delete"]), st.sampled_from("ab"),
                          st.integers(0, 2)), max_size=12))
def test_a_subscriber_hears_every_change_of_either_store_in_order(tmp_path_factory, ops):
    """Writes here and by another store (its own cache: as another process)
    interleaved: heard exactly, in order; a put of what the record already
    holds is no change."""
    root = tmp_path_factory.mktemp("subscribe")
    with Store(root, watch="off", fsync=False) as store, \
            Store(root, watch="off", fsync=False) as other:
        heard = subscribe(store)
        made: list[tuple] = []
        last: dict[str, str | None] = {}
        for here, op, id, value in ops:
            writer = store if here else other
            if op == "put":
                revision = writer.put("volumes", id, {"v": value})
                if last.get(id) != revision:
                    made.append(("volumes", id, "put", revision))
                last[id] = revision
            elif writer.delete("volumes", id):
                made.append(("volumes", id, "delete", None))
                last[id] = None
        store.all("volumes")
        assert heard == made


def test_a_failing_subscriber_fails_no_write_and_the_others_still_hear(tmp_path):
    def broken(event):
        raise RuntimeError("a subscriber's bug")
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        store.subscribe(broken)
        heard = subscribe(store)
        revision = store.put("volumes", "v1", {})
        assert heard == [("volumes", "v1", "put", revision)]
        assert store.get("volumes", "v1") == {"id": "v1"}


def test_what_came_before_subscribing_is_not_heard(tmp_path):
    """Neither the log's lines of earlier writes nor a late report of a
    file that did not change (as a late watcher event would be)."""
    with Store(tmp_path / "s", watch="off", fsync=False) as store:
        store.put("volumes", "v1", {})
        heard = subscribe(store)
        store.changed(paths.record_path("volumes", "v1"))
        store.get("volumes", "v1")
        assert heard == []


@pytest.mark.parametrize("place", ["\u00b2", "\u0663", "-1", ""])
def test_a_token_whose_offset_is_not_ascii_digits_is_refused_as_unknown(tmp_path, place):
    """str.isdigit() takes "²" and "٣", which int() refuses: such a token is
    one the feed never handed out (ChangesExpired), not a ValueError."""
    with Store(tmp_path, watch="off", fsync=False) as store:
        store.put("volumes", "v1", {"n": 1})
        log_id = store.changes().token.rpartition(".")[0]
        with pytest.raises(ChangesExpired):
            store.changes(since=f"{log_id}.{place}")
