"""The change feed (gitpersist.changefeed, `Store.changes`): exactly the
changes made, by this process, another process, a sync and a hand edit, in
order per record; resumable from any token; an expired token says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import git, run_python
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
