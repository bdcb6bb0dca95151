"""gitpersist.history.refs: refs read as git reads them, and moved by
compare-and-swap under git's <ref>.lock protocol, checked against git."""

from __future__ import annotations

import logging
import os
import time

import git as gitpython
import pytest
from helpers import fsck_clean, git

from gitpersist import HistoryError
from gitpersist.history.refs import Refs

AUTHOR = gitpython.Actor("Store Writer", "store@example.com")


def refs_of(repo, tunables, *, log_refs: bool = True) -> Refs:
    return Refs(str(repo / ".git"), str(repo / ".git"), author=AUTHOR, log_refs=log_refs,
                tunables=tunables)


def new_commit(repo, parent: str, message: str = "next") -> str:
    """A commit object made by git (the ref is not moved)."""
    tree = git(repo, "rev-parse", f"{parent}^{{tree}}").strip()
    return git(repo, "-c", "user.name=G", "-c", "user.email=g@x", "commit-tree", tree,
               "-p", parent, "-m", message).strip()


def test_reads_loose_packed_detached_and_unborn(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    head = git(git_repo, "rev-parse", "HEAD").strip()
    assert refs.head_ref() == "refs/heads/main"
    assert refs.read_ref("refs/heads/main") == head
    git(git_repo, "pack-refs", "--all", "--prune")
    assert not (git_repo / ".git" / "refs" / "heads" / "main").exists()
    assert refs.read_ref("refs/heads/main") == head
    assert refs.read_ref("refs/heads/other") is None
    git(git_repo, "checkout", "-q", "--detach")
    assert refs.head_ref() == "HEAD" and refs.read_ref("HEAD") == head
    git(git_repo, "checkout", "-q", "--orphan", "unborn")
    assert refs.head_ref() == "refs/heads/unborn" and refs.read_ref("refs/heads/unborn") is None


def test_a_bad_head_or_ref_is_refused(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    (git_repo / ".git" / "HEAD").write_text("ref: refs/heads/../../config\n")
    with pytest.raises(HistoryError, match="unsupported HEAD target"):
        refs.head_ref()
    (git_repo / ".git" / "refs" / "heads" / "bad").write_text("not an id\n")
    with pytest.raises(HistoryError, match="not a commit id"):
        refs.read_ref("refs/heads/bad")


def test_set_if_equals_moves_the_ref_and_writes_the_reflog_git_reads(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    old = git(git_repo, "rev-parse", "HEAD").strip()
    new = new_commit(git_repo, old)
    assert refs.set_if_equals("refs/heads/main", old, new, "commit: next", head=True)
    assert git(git_repo, "rev-parse", "main").strip() == new
    assert not (git_repo / ".git" / "refs" / "heads" / "main.lock").exists()
    for ref in ("main", "HEAD"):
        assert git(git_repo, "reflog", "-1", "--format=%H|%gs|%gn <%ge>", ref) == \
            f"{new}|commit: next|Store Writer <store@example.com>\n"
    line = (git_repo / ".git" / "logs" / "refs" / "heads" / "main").read_text().splitlines()[-1]
    assert line.startswith(f"{old} {new} Store Writer <store@example.com> ")
    fsck_clean(git_repo)


def test_set_if_equals_refuses_when_the_ref_moved(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    old = git(git_repo, "rev-parse", "HEAD").strip()
    (git_repo / "README").write_text("changed by hand\n")
    git(git_repo, "-c", "user.name=G", "-c", "user.email=g@x", "commit", "-q", "-am", "hand")
    moved = git(git_repo, "rev-parse", "HEAD").strip()
    ours = new_commit(git_repo, old, "ours")
    assert not refs.set_if_equals("refs/heads/main", old, ours, "commit: ours")
    assert git(git_repo, "rev-parse", "main").strip() == moved
    assert not (git_repo / ".git" / "refs" / "heads" / "main.lock").exists()
    assert "ours" not in git(git_repo, "reflog", "main")


def test_set_if_equals_with_head_refuses_a_branch_head_left(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    old = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "checkout", "-q", "-b", "elsewhere")
    new = new_commit(git_repo, old)
    assert not refs.set_if_equals("refs/heads/main", old, new, "commit: x", head=True)
    assert refs.set_if_equals("refs/heads/main", old, new, "sync: x")    # no HEAD check
    assert git(git_repo, "rev-parse", "main").strip() == new
    assert git(git_repo, "reflog", "-1", "--format=%gs", "main") == "sync: x\n"
    assert "sync: x" not in git(git_repo, "reflog", "HEAD")     # HEAD is not on main


def test_set_if_equals_creates_an_unborn_branch(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables)
    head = git(git_repo, "rev-parse", "HEAD").strip()
    git(git_repo, "checkout", "-q", "--orphan", "fresh")
    assert not refs.set_if_equals("refs/heads/fresh", head, head, "x")  # it holds nothing
    assert refs.set_if_equals("refs/heads/fresh", None, head, "commit (initial): x", head=True)
    assert git(git_repo, "rev-parse", "fresh").strip() == head
    log = (git_repo / ".git" / "logs" / "refs" / "heads" / "fresh").read_text()
    assert log.startswith("0" * 40 + f" {head} ")


def test_a_fresh_lock_fails_after_the_timeout_and_a_stale_one_is_removed(
        git_repo, git_tunables, caplog):
    refs = refs_of(git_repo, git_tunables)
    old = git(git_repo, "rev-parse", "HEAD").strip()
    new = new_commit(git_repo, old)
    lock = git_repo / ".git" / "refs" / "heads" / "main.lock"
    git_tunables.stale_lock_age = 3600
    lock.write_text("")
    started = time.monotonic()
    with pytest.raises(HistoryError, match="main.lock exists"):
        refs.set_if_equals("refs/heads/main", old, new, "commit: x")
    assert time.monotonic() - started >= git_tunables.git_lock_timeout
    assert lock.exists() and git(git_repo, "rev-parse", "main").strip() == old
    git_tunables.stale_lock_age = 60
    os.utime(lock, (time.time() - 120, time.time() - 120))      # left by a crash
    with caplog.at_level(logging.WARNING, logger="gitpersist.history.refs"):
        assert refs.set_if_equals("refs/heads/main", old, new, "commit: x")
    assert "removing a lock left 120 s ago" in caplog.text
    assert not lock.exists() and git(git_repo, "rev-parse", "main").strip() == new


def test_no_reflog_without_log_refs(git_repo, git_tunables):
    refs = refs_of(git_repo, git_tunables, log_refs=False)
    old = git(git_repo, "rev-parse", "HEAD").strip()
    new = new_commit(git_repo, old)
    before = (git_repo / ".git" / "logs" / "HEAD").read_text()
    assert refs.set_if_equals("refs/heads/main", old, new, "commit: x", head=True)
    assert (git_repo / ".git" / "logs" / "HEAD").read_text() == before


def test_a_linked_worktree_has_its_own_head_and_shares_branches(git_repo, git_tunables):
    linked = git_repo.parent / "linked"
    git(git_repo, "worktree", "add", "-q", "-b", "side", str(linked))
    git_dir = git(linked, "rev-parse", "--absolute-git-dir").strip()
    refs = Refs(git_dir, str(git_repo / ".git"), author=AUTHOR, log_refs=True,
                tunables=git_tunables)
    assert refs.head_ref() == "refs/heads/side"
    old = refs.read_ref("refs/heads/side")
    new = new_commit(git_repo, old)
    assert refs.set_if_equals("refs/heads/side", old, new, "commit: linked", head=True)
    assert git(git_repo, "rev-parse", "side").strip() == new
    assert git(linked, "reflog", "-1", "--format=%gs", "HEAD") == "commit: linked\n"
    assert git(git_repo, "reflog", "-1", "--format=%gs", "HEAD") != "commit: linked\n"
