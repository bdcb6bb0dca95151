"""A store inside an ops repository that has other content: commits hold the
store's paths only, and the user's staged, unstaged and untracked work
stays exactly as it was."""

from __future__ import annotations

import subprocess

import pytest

from gitpersist import Store, paths
from helpers import eventually
from test_history import USER, git, no_git_identity  # noqa: F401 (autouse fixture)

STORE = "cinder meta [x]"       # spaces and glob characters in the store's folder


@pytest.fixture
def ops(tmp_path):
    """An ops repository with history and every kind of work in progress."""
    repo = tmp_path / "ops"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "inventory.yaml").write_text("hosts: [a]\n")
    (repo / "playbook.yaml").write_text("tasks: []\n")
    (repo / "notes.txt").write_text("v1\n")
    git(repo, "add", ".")
    git(repo, *USER, "commit", "-q", "-m", "ops: initial")
    (repo / "inventory.yaml").write_text("hosts: [a, b]\n")        # staged
    (repo / "staged-new.txt").write_text("new\n")                   # staged, added
    git(repo, "add", "inventory.yaml", "staged-new.txt")
    (repo / "playbook.yaml").write_text("tasks: [x]\n")             # unstaged
    (repo / "inventory.yaml").write_text("hosts: [a, b, c]\n")      # staged + unstaged
    (repo / "untracked.txt").write_text("scratch\n")                # untracked
    return repo


def snapshot(repo) -> tuple[str, str, str, str]:
    """Everything `git status` / `git diff` say about the user's work."""
    return (git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
            git(repo, "diff", "--cached"), git(repo, "diff"),
            git(repo, "ls-files", "--others", "--exclude-standard"))


def open_store(path, **options) -> Store:
    return Store(path, git=True, watch="off", fsync=False, **options)


def our_commits(repo, count: int) -> list[list[str]]:
    """The paths changed by each of the last `count` commits."""
    return [git(repo, "show", "--format=", "--name-only", "-z", f"HEAD~{n}").split("\0")[:-1]
            for n in range(count)]


def test_commits_hold_only_the_store_and_the_users_work_is_untouched(ops):
    before = snapshot(ops)
    with open_store(ops / STORE) as store:
        store.put("volumes", "v1", {"status": "creating"})
        store.put("volumes", "v1", {"status": "available"})
        with store.batch("two more"):
            store.put("volumes", "v2", {"status": "creating"})
            store.put("snapshots", "s1", {"volume": "v1"})
        store.delete("volumes", "v2")
        store.flush()
        assert snapshot(ops) == before
    assert snapshot(ops) == before
    # 1 recovery commit (the store's format files) + 4 changes
    for changed in our_commits(ops, 5):
        assert changed and all(path.startswith(STORE + "/") for path in changed), changed
    assert git(ops, "show", "HEAD:inventory.yaml") == "hosts: [a]\n"   # not the staged one
    assert git(ops, "show", "HEAD:notes.txt") == "v1\n"
    assert git(ops, "log", "-1", "--format=%s", "HEAD~5") == "ops: initial\n"
    run = subprocess.run(["git", "fsck", "--strict"], cwd=ops, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_git_status_shows_nothing_of_ours_within_the_index_delay(ops):
    before = snapshot(ops)
    with open_store(ops / STORE) as store:
        assert store.history.index_delay <= 1
        store.put("volumes", "v1", {"status": "creating"})
        assert eventually(lambda: snapshot(ops) == before)
        store.put("volumes", "v1", {"status": "available"})
        store.delete("volumes", "v1")
        assert eventually(lambda: snapshot(ops) == before)


def test_a_user_commit_between_ours_keeps_both(ops):
    with open_store(ops / STORE) as store:
        store.put("volumes", "v1", {"status": "creating"})
        store.flush()       # our index update and git's commit would race for index.lock
        git(ops, *USER, "commit", "-q", "-m", "ops: add host b")     # the staged work
        store.put("volumes", "v1", {"status": "available"})
        store.flush()
        assert git(ops, "log", "--format=%s", "-3").splitlines() == [
            "volumes v1: status creating -> available", "ops: add host b", "volumes v1: created"]
        assert git(ops, "show", "HEAD:inventory.yaml") == "hosts: [a, b]\n"
        assert git(ops, "show", "HEAD:staged-new.txt") == "new\n"
        # what the user had not staged is still only in the work tree
        assert git(ops, "status", "--porcelain=v1") == (
            " M inventory.yaml\n M playbook.yaml\n?? untracked.txt\n")


def test_a_users_commit_all_after_ours_reverts_nothing(ops):
    with open_store(ops / STORE) as store:
        store.put("volumes", "v1", {"status": "available"})
        store.flush()
        git(ops, *USER, "commit", "-q", "-a", "-m", "ops: everything")
        assert store.get_at("volumes", "v1", "HEAD") == {"id": "v1", "status": "available"}
        assert git(ops, "show", "--format=", "--name-only", "HEAD").split() == [
            "inventory.yaml", "playbook.yaml", "staged-new.txt"]


def test_a_store_in_a_linked_worktree(ops, tmp_path):
    git(ops, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "meta")
    wt = tmp_path / "wt"
    with open_store(wt / "meta") as store:
        assert store.history.common_dir != store.history.git_dir
        store.put("volumes", "v1", {"size": 1})
        store.flush()
        assert git(wt, "status", "--porcelain") == ""
    assert git(ops, "log", "-1", "--format=%s", "meta") == "volumes v1: created\n"
    assert git(ops, "log", "-1", "--format=%s", "HEAD") == "ops: initial\n"
    assert git(ops, "rev-parse", "meta@{0}") == git(ops, "rev-parse", "meta")


def test_recovery_in_an_ops_repo_commits_only_store_files(ops):
    with Store(ops / STORE, watch="off", fsync=False) as plain:    # git was off
        plain.put("volumes", "v1", {"size": 1})
    (ops / STORE / "README.txt").write_text("not a record\n")
    before = snapshot(ops)
    with open_store(ops / STORE):
        pass
    changed = our_commits(ops, 1)[0]
    assert sorted(changed) == sorted(f"{STORE}/{p}" for p in (
        ".gitpersist/.gitignore", ".gitpersist/format.json", paths.record_path("volumes", "v1")))
    # the README stays untracked; the store's own files left the status
    status, *rest = snapshot(ops)
    assert [line for line in status.splitlines() if STORE in line] == [
        f'?? "{STORE}/README.txt"']
    assert [line for line in before[0].splitlines() if STORE not in line] == [
        line for line in status.splitlines() if STORE not in line]
    assert rest[:2] == list(before[1:3])
    assert rest[2] == f"{STORE}/README.txt\nuntracked.txt\n"
