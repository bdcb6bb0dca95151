"""gitpersist.sync.integrate and .journal: the trees of a merge, the note
of a sync under way, and finishing an interrupted sync at open
(tests/test_sync.py and the crash tests run whole syncs)."""

from __future__ import annotations

import git as gitpython
import pytest
from helpers import git

from gitpersist import Store, SyncError, paths
from gitpersist.history.refs import Refs
from gitpersist.history.runner import GitRunner
from gitpersist.options import Options
from gitpersist.sync.integrate import Trees
from gitpersist.sync.journal import Journal, Note
from gitpersist.sync.plumbing import LocalGit

pytestmark = pytest.mark.usefixtures("no_git_identity")


def open_host(host, **options):
    return Store(host / "meta", git=True, watch="off", fsync=False,
                 author=f"{host.name} <{host.name}@x>", **options)


def journal_of(store: Store) -> Journal:
    return Journal(store.history.git_dir, store.history.prefix)


def test_the_note_is_written_read_and_removed(tmp_path):
    journal = Journal(str(tmp_path), "meta/")
    assert journal.read("root") is None
    journal.write(Note("a" * 40, "origin", "refs/heads/main"), Options(fsync=False))
    assert journal.path.startswith(str(tmp_path / "gitpersist-sync-"))
    assert journal.path.endswith(".pending")
    assert journal.read("root") == Note("a" * 40, "origin", "refs/heads/main")
    assert Journal(str(tmp_path), "other/").path != journal.path     # one per store
    journal.remove()
    assert journal.read("root") is None


@pytest.mark.parametrize("content, logged", [
    (b"not json", "unreadable note of an interrupted sync, ignored"),
    (b'{"commit": "x"}', "unreadable note of an interrupted sync, ignored"),
    (b'{"commit": "%s", "remote": "origin", "branch": "refs/heads/main"}' % (b"0" * 40),
     "commit 0000000000000000000000000000000000000000 of the note is missing"),
    (b'{"commit": 123, "remote": "origin", "branch": "refs/heads/main"}',
     "commit 123 of the note is missing"),
])
def test_a_note_that_cannot_be_finished_is_logged_and_removed_at_open(tmp_path, caplog,
                                                                      content, logged):
    with open_host(tmp_path / "a") as store:
        store.put("volumes", "v1", {})
        journal = journal_of(store)
    with open(journal.path, "wb") as file:
        file.write(content)
    with open_host(tmp_path / "a") as store:
        assert store.get("volumes", "v1") == {"id": "v1"}
    assert logged in caplog.text
    assert journal.read("root") is None


def test_a_noted_commit_is_merged_at_the_next_open(clone_of, caplog):
    """What a sync killed after writing its files leaves: the note and the
    remote commit, fetched; opening the store merges it."""
    a, b = clone_of("a"), clone_of("b")
    with open_host(b, remote="origin") as store_b:
        store_b.put("volumes", "v1", {"n": 1})
        store_b.sync()
    with open_host(a, remote="origin") as store_a:
        store_a.sync()
    with open_host(b, remote="origin") as store_b:
        store_b.put("volumes", "v1", {"n": 2})
        store_b.sync()
        theirs = git(b, "rev-parse", "HEAD").strip()
    git(a, "fetch", "-q", "origin")
    with open_host(a) as store_a:
        store_a.put("volumes", "v2", {"n": 3})          # a merge, not a fast-forward
        journal = journal_of(store_a)
        branch = git(a, "symbolic-ref", "HEAD").strip()
    journal.write(Note(theirs, "origin", branch), Options(fsync=False))
    with open_host(a) as store_a:
        assert store_a.get("volumes", "v1") == {"id": "v1", "n": 2}
        assert store_a.get("volumes", "v2") == {"id": "v2", "n": 3}
    assert "finished a sync with 'origin' interrupted before it moved the branch " \
           "(1 file(s))" in caplog.text
    assert git(a, "log", "-1", "--format=%P").split()[1] == theirs
    assert journal.read("root") is None
    assert git(a, "status", "--porcelain") == ""


def test_a_branch_that_keeps_moving_fails_the_sync_and_the_next_open_finishes_it(
        clone_of, monkeypatch):
    a, b = clone_of("a"), clone_of("b")
    with open_host(a, remote="origin") as store_a, open_host(b, remote="origin") as store_b:
        store_b.put("volumes", "v1", {"n": 1})
        store_b.sync()
        store_a.put("volumes", "v2", {"n": 2})
        set_if_equals = Refs.set_if_equals

        def moved_meanwhile(self, ref, old, new, message, **kwargs):
            if message.startswith("gitpersist sync:"):
                return False
            return set_if_equals(self, ref, old, new, message, **kwargs)
        monkeypatch.setattr(Refs, "set_if_equals", moved_meanwhile)
        with pytest.raises(SyncError, match="kept moving during the merge; try again"):
            store_a.sync()
        monkeypatch.undo()
        journal = journal_of(store_a)
        assert journal.read("root") is not None      # the files are written: noted
        assert (a / "meta" / paths.record_path("volumes", "v1")).exists()
    with open_host(a) as store_a:
        assert journal.read("root") is None
        assert "found changed at open" not in git(a, "log", "--format=%s")
        assert store_a.get("volumes", "v1") == {"id": "v1", "n": 1}
    assert git(a, "status", "--porcelain") == ""


def test_overlays_build_cumulative_trees_in_a_scratch_index(git_repo):
    local = LocalGit(GitRunner(str(git_repo), error=SyncError), git_dir=str(git_repo / ".git"),
                     prefix="meta/", author=gitpython.Actor("T", "t@x"))
    blob = local.write_blob(b"new\n")
    index_before = (git_repo / ".git" / "index").read_bytes()
    first, second = Trees(local, "origin").overlay(
        local.tree_of("HEAD"), [{"README": None}, {"meta/new.txt": (0o100644, blob)}])
    assert git(git_repo, "ls-tree", "-r", "--name-only", first) == ""
    assert git(git_repo, "ls-tree", "-r", "--name-only", second) == "meta/new.txt\n"
    assert (git_repo / ".git" / "index").read_bytes() == index_before
    assert not list((git_repo / ".git").glob("gitpersist-sync-*"))


def test_files_outside_the_store_changed_on_both_sides_fail_naming_them(git_repo):
    local = LocalGit(GitRunner(str(git_repo), error=SyncError), git_dir=str(git_repo / ".git"),
                     prefix="meta/", author=gitpython.Actor("T", "t@x"))
    env = ["-c", "user.name=T", "-c", "user.email=t@x"]
    base = git(git_repo, "rev-parse", "HEAD").strip()
    (git_repo / "README").write_text("mine\n")
    git(git_repo, *env, "commit", "-q", "-am", "mine")
    mine = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "checkout", "-q", "-b", "other", base)
    (git_repo / "README").write_text("theirs\n")
    git(git_repo, *env, "commit", "-q", "-am", "theirs")
    theirs = git(git_repo, "rev-parse", "HEAD").strip()
    with pytest.raises(SyncError, match="files outside the store changed on both sides and "
                                        "git cannot merge them: README"):
        Trees(local, "origin").merge(mine, theirs, unrelated=False)
