"""Sync through git remotes (gitpersist.sync): a bare repository in a temp
folder is the remote, clones of it are the hosts, and no global git
identity exists (the `no_git_identity` fixture, also inherited by the
processes the tests start)."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
from helpers import child_pids, eventually, fsck_clean, git, run_python, start_python

from gitpersist import ConfigError, HistoryError, Store, StoreError, paths
from gitpersist.sync import SyncError
from gitpersist.sync.remote import Remote

pytestmark = pytest.mark.usefixtures("no_git_identity")     # conftest

META = "meta"       # the store's folder inside each clone (an ops-repository layout)


@pytest.fixture
def remote(tmp_path):
    """An empty bare repository: the shared remote."""
    path = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(path))
    return path


def clone(remote, name: str):
    """A host: a clone of the remote (which may be empty)."""
    host = remote.parent / name
    git(remote.parent, "clone", "-q", str(remote), name)
    return host


def open_host(host, **options) -> Store:
    """The host's store; each host commits under its own name, as real
    hosts would (so two fresh hosts never make the very same first commit)."""
    options = {"git": True, "watch": "off", "fsync": False, "remote": "origin",
               "author": f"{host.name} <{host.name}@example.com>", **options}
    return Store(host / META, **options)


def clean(host) -> bool:
    return git(host, "status", "--porcelain", "--untracked-files=all") == ""


def record_file(type: str, id: str) -> str:
    return f"{META}/{paths.record_path(type, id)}"


def share(first: Store, second: Store, volumes: dict[str, dict]) -> None:
    """`first` writes `volumes`; then both hosts sync and hold them."""
    for id, doc in volumes.items():
        first.put("volumes", id, doc)
    first.sync()
    second.sync()


# -- merging ----------------------------------------------------------------------

def test_first_sync_of_two_hosts_from_an_empty_remote(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        store_a.put("volumes", "va", {"size": 1})
        store_b.put("volumes", "vb", {"size": 2})
        store_b.put("snapshots", "sb", {"volume_id": "vb"})
        first = store_a.sync()
        assert (first.remote_head, first.pushed, first.received) == (None, True, [])
        second = store_b.sync()        # unrelated histories: merged
        assert second.pushed and not second.conflicts
        assert second.received == [paths.record_path("volumes", "va")]
        third = store_a.sync()          # a fast-forward
        assert not third.pushed and sorted(third.received) == sorted(
            [paths.record_path("volumes", "vb"), paths.record_path("snapshots", "sb")])
        for store in (store_a, store_b):
            assert [v["id"] for v in store.all("volumes")] == ["va", "vb"]
            assert store.get("snapshots", "sb") == {"id": "sb", "volume_id": "vb"}
    for host in (a, b):
        assert git(host, "rev-parse", "HEAD") == git(remote, "rev-parse", "HEAD")
        assert len(git(host, "rev-list", "--max-parents=0", "HEAD").split()) == 2
        assert clean(host)
        fsck_clean(host)


def test_different_records_changed_on_both_hosts_merge_cleanly(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}, "v2": {"status": "creating"}})
        assert [v["id"] for v in store_b.all("volumes")] == ["v1", "v2"]   # cache warm
        store_a.put("volumes", "v1", {"status": "available"})
        store_b.put("volumes", "v2", {"status": "in-use"})
        store_b.put("volumes", "v3", {"status": "creating"})
        store_a.sync()
        report = store_b.sync()
        assert not report.conflicts
        assert report.received == [paths.record_path("volumes", "v1")]
        store_a.sync()
        for store in (store_a, store_b):
            assert {v["id"]: v["status"] for v in store.all("volumes")} == {
                "v1": "available", "v2": "in-use", "v3": "creating"}
    merge = git(b, "log", "-1", "--format=%P", "HEAD").split()
    assert len(merge) == 2
    assert clean(a) and clean(b)


def test_the_same_record_changed_on_both_hosts_converges_to_the_later_change(remote, caplog):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        earlier = store_a.put("volumes", "v1", {"status": "error"})
        time.sleep(1.1)                 # git keeps commit times in seconds
        later = store_b.put("volumes", "v1", {"status": "available"})
        # a merges: the remote's (b's) change is the later one and wins
        store_b_report = store_b.sync()
        assert store_b_report.conflicts == []        # b was first: nothing to merge
        report = store_a.sync()
        [conflict] = report.conflicts
        assert (conflict.type, conflict.id, conflict.relpath) == (
            "volumes", "v1", paths.record_path("volumes", "v1"))
        assert (conflict.winner, conflict.winner_revision, conflict.loser_revision) == (
            "remote", later, earlier)
        assert "changed on both sides" in caplog.text and "volumes/" in caplog.text
        store_b.sync()
        for store in (store_a, store_b):
            assert store.get("volumes", "v1")["status"] == "available"
            assert store.revision("volumes", "v1") == later
            # the losing change stays in history, on the merge's other parent
            assert store.get_at("volumes", "v1", conflict.loser_commit)["status"] == "error"
            assert store.get_at("volumes", "v1", conflict.winner_commit)["status"] == "available"
        message = git(a, "log", "-1", "--format=%B")
        assert "1 conflict" in message and conflict.loser_commit[:12] in message
        parents = git(a, "log", "-1", "--format=%P").split()
        assert conflict.loser_commit in parents and conflict.winner_commit in parents


def test_the_later_local_change_wins_too(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        store_b.put("volumes", "v1", {"status": "error"})
        store_b.sync()
        time.sleep(1.1)
        mine = store_a.put("volumes", "v1", {"status": "available"})
        [conflict] = store_a.sync().conflicts
        assert (conflict.winner, conflict.winner_revision) == ("local", mine)
        store_b.sync()
        assert store_b.get("volumes", "v1")["status"] == "available"


def test_both_hosts_pick_the_same_winner_whichever_merges(remote, tmp_path):
    """The rule is symmetric: a and b merge the same two commits on their
    own (through two remotes) and reach the same records, also when the
    changes were made within the same second (then the blob ids decide)."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        for n in range(4):
            store_a.put("volumes", f"v{n}", {"n": n})
        store_a.sync()
        store_b.sync()
        for n in range(4):
            store_a.put("volumes", f"v{n}", {"n": n, "by": "a"})
            store_b.put("volumes", f"v{n}", {"n": n, "by": "b"})
        store_a.delete("volumes", "v0")
        store_b.delete("volumes", "v1")
        for name, host in (("to-a", a), ("to-b", b)):
            git(tmp_path, "init", "-q", "--bare", name)
            git(host, "remote", "add", "side", str(tmp_path / name))
        git(a, "push", "-q", str(tmp_path / "to-b"), "HEAD:refs/heads/master")
        git(b, "push", "-q", str(tmp_path / "to-a"), "HEAD:refs/heads/master")
    with open_host(a, remote="side") as store_a, open_host(b, remote="side") as store_b:
        conflicts_a = store_a.sync().conflicts       # a merges b's commits
        conflicts_b = store_b.sync().conflicts       # b merges a's commits
        assert len(conflicts_a) == len(conflicts_b) == 4
        assert [c.winner_revision for c in conflicts_a] == [
            c.winner_revision for c in conflicts_b]
        assert [c.winner for c in conflicts_a] == [
            {"local": "remote", "remote": "local"}[c.winner] for c in conflicts_b]
        assert store_a.all("volumes") == store_b.all("volumes")
        assert git(a, "rev-parse", "HEAD^{tree}") == git(b, "rev-parse", "HEAD^{tree}")


def test_a_delete_against_an_edit_goes_by_time_like_two_edits(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"edited-later": {"status": "available"},
                                 "deleted-later": {"status": "available"}})
        store_a.delete("volumes", "edited-later")
        store_b.put("volumes", "deleted-later", {"status": "in-use"})
        time.sleep(1.1)
        store_a.delete("volumes", "deleted-later")
        edit = store_b.put("volumes", "edited-later", {"status": "error"})
        store_a.sync()
        report = store_b.sync()
        by_id = {c.id: c for c in report.conflicts}
        assert (by_id["edited-later"].winner, by_id["edited-later"].winner_revision,
                by_id["edited-later"].loser_revision) == ("local", edit, None)
        assert (by_id["deleted-later"].winner, by_id["deleted-later"].winner_revision) == (
            "remote", None)
        store_a.sync()
        for store, host in ((store_a, a), (store_b, b)):
            assert store.get("volumes", "edited-later") == {"id": "edited-later",
                                                            "status": "error"}
            assert store.get("volumes", "deleted-later") is None
            assert not (host / record_file("volumes", "deleted-later")).exists()
            assert clean(host)


def test_a_record_changed_on_disk_but_not_committed_is_committed_not_overwritten(remote):
    """Another process's pending asynchronous commit, or a hand edit: the
    sync commits it before merging (it is then the later change)."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        store_a.put("volumes", "v1", {"status": "error"})
        store_a.sync()
        time.sleep(1.1)
        (b / record_file("volumes", "v1")).write_bytes(b'{"id":"v1","status":"by hand"}')
        report = store_b.sync()
        [conflict] = report.conflicts
        assert conflict.winner == "local"
        assert store_b.get("volumes", "v1")["status"] == "by hand"
        assert "changed before a sync" in git(b, "log", "--format=%s")
        store_a.sync()
        assert store_a.get("volumes", "v1")["status"] == "by hand"
        assert clean(a) and clean(b)


def test_a_sync_moves_the_branch_as_git_does_with_a_reflog_entry(remote):
    """The branch moves by the history's compare-and-swap: git reads the
    entry in the branch's reflog and in HEAD's."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"n": 1}})
        store_a.put("volumes", "v1", {"n": 2})
        store_b.put("volumes", "v2", {"n": 3})
        store_a.sync()
        report = store_b.sync()             # a merge
        branch = git(b, "symbolic-ref", "HEAD").strip()
        subject = git(b, "log", "-1", "--format=%s")
        for ref in (branch, "HEAD"):
            assert git(b, "reflog", "-1", "--format=%H %gs", ref) == \
                f"{report.head} gitpersist sync: {subject}"
        assert git(b, "reflog", "-1", "--format=%gn <%ge>", branch) == "b <b@example.com>\n"
        store_a.sync()                      # a fast-forward
        assert git(a, "reflog", "-1", "--format=%gs", "HEAD") == \
            f"gitpersist sync: fast-forward to origin {branch}\n"
    fsck_clean(a)
    fsck_clean(b)


def test_a_branch_lock_held_by_git_fails_the_sync_and_the_next_one_finishes(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"n": 1}})
        store_a.put("volumes", "v1", {"n": 2})
        store_a.sync()
        store_b.history.git_lock_timeout = 0.2
        lock = b / ".git" / (git(b, "symbolic-ref", "HEAD").strip() + ".lock")
        lock.write_text("")                 # git is moving the branch (for a while)
        head = git(b, "rev-parse", "HEAD")
        with pytest.raises(SyncError, match="lock"):
            store_b.sync()
        assert git(b, "rev-parse", "HEAD") == head
        lock.unlink()
        store_b.sync()
        assert store_b.get("volumes", "v1") == {"id": "v1", "n": 2}
        assert git(b, "rev-parse", "HEAD") == git(a, "rev-parse", "HEAD")
        assert clean(b)


# -- failures -----------------------------------------------------------------------

def test_a_rejected_push_fetches_merges_and_retries(remote, monkeypatch):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        store_a.put("volumes", "va", {"n": 1})
        store_b.put("volumes", "vb", {"n": 2})
        store_b.sync()
        store_a.sync()
        store_b.sync()
        store_a.put("volumes", "va", {"n": 10})
        store_b.put("volumes", "vb", {"n": 20})
        head = Remote.head
        raced = []

        def racing_head(self, remote_ref):
            found = head(self, remote_ref)
            if self.git.worktree == os.path.realpath(a) and not raced:
                raced.append(store_b.sync())    # b pushes after a asked for the remote head
            return found
        monkeypatch.setattr(Remote, "head", racing_head)
        report = store_a.sync()
        assert raced[0].pushed
        assert report.attempts == 2 and report.pushed and not report.conflicts
        assert report.received == [paths.record_path("volumes", "vb")]
        monkeypatch.undo()
        store_b.sync()
        for store in (store_a, store_b):
            assert {v["id"]: v["n"] for v in store.all("volumes")} == {"va": 10, "vb": 20}
    assert git(a, "rev-parse", "HEAD") == git(b, "rev-parse", "HEAD") == git(
        remote, "rev-parse", "HEAD")


def test_an_unreachable_remote_fails_clearly_and_keeps_local_commits(remote, tmp_path):
    a, b = clone(remote, "a"), clone(remote, "b")
    missing = tmp_path / "moved.git"
    with open_host(a) as store_a:
        store_a.put("volumes", "v1", {"n": 1})
        store_a.sync()
        git(a, "remote", "set-url", "origin", str(missing))
        store_a.put("volumes", "v2", {"n": 2})
        head = git(a, "rev-parse", "HEAD")
        with pytest.raises(SyncError) as failure:
            store_a.sync()
        assert isinstance(failure.value, HistoryError)
        assert "'origin'" in str(failure.value) and str(missing) in str(failure.value)
        assert "local commits are kept" in str(failure.value)
        assert git(a, "rev-parse", "HEAD") == head
        assert store_a.get("volumes", "v2") == {"id": "v2", "n": 2}
        assert clean(a)
        os.rename(remote, missing)          # the remote is back, at its new place
        report = store_a.sync()
        assert report.pushed
    with open_host(b, sync_on_open=True) as store_b:
        assert store_b.get("volumes", "v2") is None     # b's URL still points at the old path
    git(b, "remote", "set-url", "origin", str(missing))
    with open_host(b, sync_on_open=True) as store_b:
        assert [v["id"] for v in store_b.all("volumes")] == ["v1", "v2"]


KILLED_BEFORE_THE_BRANCH_MOVES = """
import os, signal, sys
from gitpersist import Store
from gitpersist.history.refs import Refs
set_if_equals = Refs.set_if_equals
def die_before_a_sync_moves_the_branch(self, ref, old, new, message, **kwargs):
    if message.startswith("gitpersist sync:"):
        os.kill(os.getpid(), signal.SIGKILL)
    return set_if_equals(self, ref, old, new, message, **kwargs)
Refs.set_if_equals = die_before_a_sync_moves_the_branch
Store(sys.argv[1], git=True, watch="off", fsync=False, remote="origin", author="a <a@x>").sync()
"""


def test_a_sync_killed_before_the_branch_moved_is_finished_at_the_next_open(remote):
    """Its received files are on disk, uncommitted, while another process
    of the host commits meanwhile.  The next open merges what the sync was
    applying (it does not commit those files as a change of its own time),
    so a later remote change to them still wins."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"n": 1}})
        store_b.put("volumes", "v1", {"n": 2})
        store_b.sync()
        store_a.put("volumes", "v3", {"n": 3})           # a merge, not a fast-forward
        run = run_python(KILLED_BEFORE_THE_BRANCH_MOVES, str(a / META), check=False)
        assert run.returncode == -9, run.stderr
        assert b'"n": 2' in (a / record_file("volumes", "v1")).read_bytes()
        assert list(a.joinpath(".git").glob("gitpersist-sync-*.pending"))
        store_a.put("volumes", "v4", {"n": 4})           # another process goes on
        time.sleep(1.1)
        store_b.delete("volumes", "v1")                  # the remote's later change
        store_b.sync()
    with open_host(a) as store_a:
        assert not list(a.joinpath(".git").glob("gitpersist-sync-*.pending"))
        assert "found changed at open" not in git(a, "log", "-1", "--format=%s")
        assert clean(a)
        assert not store_a.sync().conflicts
        assert store_a.get("volumes", "v1") is None
    with open_host(b) as store_b:
        store_b.sync()
        assert [v["id"] for v in store_b.all("volumes")] == ["v3", "v4"]


def test_sync_on_open_failure_is_logged_and_the_store_opens(remote, tmp_path, caplog):
    a = clone(remote, "a")
    git(a, "remote", "set-url", "origin", str(tmp_path / "nowhere"))
    with open_host(a, sync_on_open=True) as store:
        store.put("volumes", "v1", {})
    assert "sync on open failed" in caplog.text and "nowhere" in caplog.text


def test_files_outside_the_store_follow_git_rules(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        (a / "README").write_text("v1\n")
        git(a, "add", "README")
        git(a, "-c", "user.name=Ops", "-c", "user.email=ops@x", "commit", "-q", "-m", "readme")
        store_a.put("volumes", "v1", {})
        store_a.sync()
        (b / "notes.txt").write_text("my unstaged work\n")          # untracked
        store_b.put("volumes", "v2", {})
        store_b.sync()
        assert (b / "README").read_text() == "v1\n"
        assert (b / "notes.txt").read_text() == "my unstaged work\n"
        assert git(b, "status", "--porcelain") == "?? notes.txt\n"
        # a local change to a file the remote changed: refused, nothing moves
        store_a.sync()
        (a / "README").write_text("v2\n")
        git(a, "-c", "user.name=Ops", "-c", "user.email=ops@x", "commit", "-q", "-am", "v2")
        store_a.sync()
        (b / "README").write_text("local edit\n")
        store_b.put("volumes", "v3", {})
        head = git(b, "rev-parse", "HEAD")
        with pytest.raises(SyncError, match="outside the store"):
            store_b.sync()
        assert git(b, "rev-parse", "HEAD") == head
        assert (b / "README").read_text() == "local edit\n"
        assert store_b.get("volumes", "v1") is not None and store_b.get("volumes", "v3")
        (b / "README").write_text("v1\n")                       # the user gives up the edit
        assert store_b.sync().pushed
        assert (b / "README").read_text() == "v2\n"


def test_a_detached_head_is_refused_naming_the_repository(remote):
    a = clone(remote, "a")
    with open_host(a) as store:
        store.put("volumes", "v1", {})
        git(a, "checkout", "-q", "--detach")
        with pytest.raises(SyncError, match="detached"):
            store.sync()
    assert git(remote, "rev-list", "--all") == ""


def test_bad_sync_options_name_the_option(remote, tmp_path):
    a = clone(remote, "a")
    cases = [({"git": False}, "remote: 'origin' needs git true"),
             ({"remote": "nope"}, "remote='nope': no such git remote"),
             ({"remote": ""}, "remote: ''"),
             ({"sync_every": 0}, "sync_every: 0"),
             ({"sync_every": "5"}, "sync_every: '5'"),
             ({"sync_on_open": 1}, "sync_on_open: 1"),
             ({"remote": None, "sync_after_commit": True}, "sync_after_commit: True needs remote")]
    for options, message in cases:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            open_host(a, **options)
    with Store(tmp_path / "plain", watch="off") as store:
        with pytest.raises(StoreError, match="no remote"):
            store.sync()


# -- caches, watchers, processes -------------------------------------------------------

READER = """
import sys, time
from gitpersist import Store
with Store(sys.argv[1], indexes={"volumes": {"status": None}}) as store:
    store.find("volumes")
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if [d["id"] for d in store.find("volumes", status="synced")] == ["v1"]:
            print("seen", flush=True)
            break
        time.sleep(0.01)
"""


def test_other_processes_on_the_host_see_synced_records_through_their_watcher(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        reader = start_python(READER, str(b / META))
        assert reader.stdout.readline().strip() == "ready"
        share(store_a, store_b, {"v1": {"status": "synced"}})
        out, err = reader.communicate(timeout=120)
    assert out.strip() == "seen", err


HOST = """
import sys, time
from gitpersist import Store
from gitpersist.sync import Syncer
root, me, total, policy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
options = {"after": {"sync_after_commit": True}, "every": {"sync_every": 0.3},
           "both": {"sync_after_commit": True, "sync_every": 0.3}}[policy]
Syncer.retry_delay = 0.2            # the tunable, for every syncer of this process
with Store(root, git=True, fsync=False, remote="origin", author=f"{me} <{me}@x>",
           **options) as store:
    for n in range(5):
        store.put("volumes", f"{me}-{n}", {"n": n, "host": me})
        time.sleep(0.05)
    if policy != "after":           # hosts that poll wait until they have everything
        deadline = time.monotonic() + 90
        while len(store.all("volumes")) < total:
            if time.monotonic() > deadline:
                sys.exit(f"{me}: only {len(store.all('volumes'))} of {total}")
            time.sleep(0.05)
print(me, "done", flush=True)
"""


@pytest.mark.slow
def test_automatic_sync_with_processes_on_three_hosts(remote, tmp_path):
    hosts = [clone(remote, name) for name in ("a", "b", "c")]
    policies = ["after", "every", "both"]
    procs = [start_python(HOST, str(host / META), host.name, "15", policy)
             for host, policy in zip(hosts, policies)]
    for proc in procs:
        out, err = proc.communicate(timeout=150)
        assert proc.returncode == 0, err
        assert out.strip().endswith("done")
    check = clone(remote, "check")
    with open_host(check, remote=None) as store:
        volumes = store.all("volumes")
        assert len(volumes) == 15
        assert {v["host"] for v in volumes} == {"a", "b", "c"}
    fsck_clean(check)
    for host in hosts:
        assert clean(host)


@pytest.mark.parametrize("commit_mode", ["sync", "async"])
def test_after_commit_policy_pushes_in_the_background_and_close_sends_the_rest(
        remote, commit_mode):
    a = clone(remote, "a")
    before = child_pids()
    threads = set(threading.enumerate())
    with open_host(a, sync_after_commit=True, commit_mode=commit_mode) as store:
        store.put("volumes", "v1", {"n": 1})
        assert eventually(lambda: "v1" in git(remote, "log", "--format=%s", "-1",
                                               check=False), timeout=30)
        with store.batch("two at once"):
            store.put("volumes", "v2", {})
            store.put("volumes", "v3", {})
    # closed: the batch's commit was sent at the latest by close()
    assert git(remote, "log", "-1", "--format=%s") == "two at once\n"
    assert child_pids() <= before
    assert set(threading.enumerate()) <= threads


def test_sync_every_runs_in_the_background_until_close(remote):
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a:
        store_a.put("volumes", "v1", {})
        store_a.sync()
    threads = set(threading.enumerate())
    with open_host(b, sync_every=0.2) as store_b:
        assert any(t.name.startswith("gitpersist-sync") for t in threading.enumerate())
        assert eventually(lambda: store_b.get("volumes", "v1") is not None, timeout=30)
        with open_host(a) as store_a:
            store_a.put("volumes", "v2", {})
            store_a.sync()
        assert eventually(lambda: store_b.get("volumes", "v2") is not None, timeout=30)
    assert set(threading.enumerate()) <= threads


def test_one_sync_at_a_time_across_processes(remote):
    """Two processes of one host syncing at once: the sync lock serialises
    them; both succeed and nothing is lost."""
    a = clone(remote, "a")
    code = """
import sys
from gitpersist import Store
with Store(sys.argv[1], git=True, fsync=False, watch="off", remote="origin",
           author="p <p@x>") as store:
    for n in range(10):
        store.put("volumes", f"{sys.argv[2]}-{n}", {})
        store.sync()
print("ok")
"""
    procs = [start_python(code, str(a / META), name) for name in ("p", "q")]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "ok", err
    assert len(git(remote, "ls-tree", "-r", "--name-only", "HEAD", f"{META}/volumes").split()) == 20
    assert clean(a)


def test_a_plain_clone_reads_what_sync_pushed(remote):
    """A plain `git pull` on another clone sees exactly what sync pushed."""
    a = clone(remote, "a")
    with open_host(a) as store:
        store.put("volumes", "v1", {"size": 1})
        store.sync()
    plain = clone(remote, "plain")
    assert (plain / record_file("volumes", "v1")).read_bytes() == (
        a / record_file("volumes", "v1")).read_bytes()
    run = run_python("""
import sys
from gitpersist import Store
with Store(sys.argv[1], watch="off") as store:
    print(store.get("volumes", "v1")["size"])
""", str(plain / META))
    assert run.stdout.strip() == "1"
    assert subprocess.run(["git", "fsck", "--no-progress"], cwd=plain).returncode == 0


# -- the command line and the cinderlib plugin ------------------------------------------

def test_gitpersist_sync_command(remote, capsys):
    from gitpersist import cli
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating"}})
        store_a.put("volumes", "v1", {"status": "error"})
        time.sleep(1.1)
        store_b.put("volumes", "v1", {"status": "available"})
        store_a.sync()
    assert cli.main(["--path", str(b / META), "sync", "--json"]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["pushed"] and report["remote"] == "origin"
    assert [(c["id"], c["winner"]) for c in report["conflicts"]] == [("v1", "local")]
    assert "changed on both sides" in err
    assert cli.main(["--path", str(a / META), "sync"]) == 0
    out, _ = capsys.readouterr()
    assert out == "sync with origin (refs/heads/master): 1 file(s) received, nothing to push\n"
    assert cli.main(["--path", str(a / META), "sync", "--remote", "nope"]) == 1
    _, err = capsys.readouterr()
    assert "remote='nope': no such git remote" in err
    with Store(remote.parent / "plain", watch="off"):
        pass
    assert cli.main(["--path", str(remote.parent / "plain"), "sync"]) == 1
    assert "keeps no git history" in capsys.readouterr().err


@pytest.mark.parametrize("config, key", [
    ({"remote": "origin"}, "remote"),
    ({"git": True, "remote": ""}, "remote"),
    ({"git": True, "remote": "a b"}, "remote"),
    ({"git": True, "sync_every": 5}, "sync_every"),
    ({"git": True, "remote": "origin", "sync_every": 0}, "sync_every"),
    ({"git": True, "remote": "origin", "sync_on_open": "yes"}, "sync_on_open"),
    ({"git": True, "sync_after_commit": True}, "sync_after_commit"),
])
@pytest.mark.cinderlib
def test_plugin_sync_options_are_checked_naming_the_key(tmp_path, config, key):
    pytest.importorskip("cinderlib")
    from gitpersist.plugin import FilePersistence
    with pytest.raises(ConfigError, match=f"persistence_config '{key}'"):
        FilePersistence(path=str(tmp_path / "store"), **config)
    assert not (tmp_path / "store").exists()


PLUGIN_HOST = """
import sys
from gitpersist.plugin import FilePersistence
plugin = FilePersistence(path=sys.argv[1], git=True, watch="off", remote="origin",
                         author="b <b@x>", sync_on_open=True)
[volume] = plugin.get_volumes(volume_name="data")
print(volume.id, volume.size, volume.backend, flush=True)
plugin.set_key_value(__import__("cinderlib").KeyValue("seen-by-b", volume.id))
report = plugin.sync()
print("pushed" if report.pushed else "not pushed")
plugin.close()
"""


@pytest.mark.cinderlib
@pytest.mark.slow
def test_a_volume_created_through_cinderlib_on_host_a_is_seen_on_host_b(
        remote, cinderlib_setup):
    cinderlib = pytest.importorskip("cinderlib")
    a, b = clone(remote, "a"), clone(remote, "b")
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(a / META), "git": True, "fsync": False,
        "watch": "off", "remote": "origin", "author": "a <a@x>"})
    backend = cinderlib.Backend(volume_backend_name="fake",
                                volume_driver="cinder.tests.fake_driver.FakeLoggingVolumeDriver")
    volume = backend.create_volume(size=3, name="data")
    assert persistence.sync().pushed
    run = run_python(PLUGIN_HOST, str(b / META))        # host b, another process
    volume_id, size, backend_name = run.stdout.splitlines()[0].split()
    assert (volume_id, size, backend_name) == (volume.id, "3", "fake")
    assert run.stdout.splitlines()[1] == "pushed"
    report = persistence.sync()
    assert report.received == [paths.record_path("key_values", "seen-by-b")]
    [key_value] = persistence.get_key_values("seen-by-b")
    assert key_value.value == volume.id


# -- secret fields across hosts ---------------------------------------------------

@pytest.mark.parametrize("b_first", [False, True], ids=["a-then-b", "b-opened-first"])
def test_a_secret_declared_on_one_host_holds_on_the_other_after_a_sync(remote, b_first):
    """Host a declares a secret field; host b, opened without the option
    (a CLI, an old script), learns it at its first sync, whichever format
    file git would call the later one: no record file, commit or push
    ever carries the value.  b_first: both format files are new, and b's
    is the later (the union must win, not the later)."""
    a, b = clone(remote, "a"), clone(remote, "b")
    store_b = open_host(b) if b_first else None
    if b_first:
        time.sleep(1.1)         # git keeps seconds: b's format commit is older
    with open_host(a, secret_fields={"conns": ["password"]}) as store_a:
        store_a.put("conns", "c1", {"host": "h1", "password": "HUNTER2-A"})
        store_a.sync()
        store_b = store_b or open_host(b)
        with store_b:
            store_b.sync()
            assert store_b.secret_fields == {"conns": ["password"]}
            assert store_b.get("conns", "c1") == {"id": "c1", "host": "h1"}
            store_b.put("conns", "c1", {"host": "h1", "password": "HUNTER2-B"})
            assert store_b.get("conns", "c1")["password"] == "HUNTER2-B"
            store_b.sync()
        store_a.sync()
        assert store_a.get("conns", "c1")["password"] == "HUNTER2-A"    # stays on a
    for repo in (a, b):
        history = git(repo, "log", "-p", "--all")
        assert "HUNTER2" not in history and "HUNTER2" not in (repo / record_file("conns", "c1")).read_text()
        declared = json.loads((repo / META / ".gitpersist" / "format.json").read_text())
        assert declared["secret_fields"] == {"conns": ["password"]}
    assert "HUNTER2" not in git(remote, "log", "-p", "--all")
    assert clean(a) and clean(b)
