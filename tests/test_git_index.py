"""gitpersist.history.index: index-info lines git reads back, and the
history's index updates (pending paths, due times, paths that moved)."""

from __future__ import annotations

import os
import threading
import time

from helpers import git

from gitpersist.history.index import IndexFollower, index_info, update_index
from gitpersist.history.objects import FILE_MODE
from gitpersist.history.runner import GitRunner


def blob(repo, data: bytes) -> str:
    """Write a blob with git; its id."""
    return git(repo, "hash-object", "-w", "--stdin", binary=True, input=data).decode().strip()


def test_index_info_lines_are_sorted_nul_terminated_and_removals_have_mode_0():
    assert index_info({"b": (0o100644, "1" * 40), "a x/é": None}) == (
        b"0 " + b"0" * 40 + "\ta x/é\0".encode() + b"100644 " + b"1" * 40 + b"\tb\0")


def test_entries_round_trip_through_git_ls_files(git_repo):
    runner = GitRunner(str(git_repo))
    one, two = blob(git_repo, b"one\n"), blob(git_repo, b"two\n")
    run = update_index(runner, {"meta/a b/é.json": (0o100644, one), "tool.sh": (0o100755, two),
                                "README": None})
    assert run.returncode == 0, run.stderr
    listed = git(git_repo, "-c", "core.quotePath=false", "ls-files", "-s")
    assert listed == f"100644 {one} 0\tmeta/a b/é.json\n100755 {two} 0\ttool.sh\n"


def test_a_scratch_index_leaves_the_real_one_alone(git_repo):
    runner = GitRunner(str(git_repo))
    before = (git_repo / ".git" / "index").read_bytes()
    scratch = str(git_repo / ".git" / "scratch.index")
    run = update_index(runner, {"new": (0o100644, blob(git_repo, b"n\n"))},
                       env={"GIT_INDEX_FILE": scratch})
    assert run.returncode == 0
    assert (git_repo / ".git" / "index").read_bytes() == before
    assert runner.text(["ls-files"], env={"GIT_INDEX_FILE": scratch}) == "new\n"


def test_update_index_waits_for_a_held_index_lock(git_repo):
    lock = git_repo / ".git" / "index.lock"
    lock.write_text("")
    threading.Timer(0.3, lock.unlink).start()
    run = update_index(GitRunner(str(git_repo)), {"README": None}, lock_timeout=5)
    assert run.returncode == 0
    assert git(git_repo, "ls-files") == ""


class Head:
    """A stand-in for the history's HEAD lookups."""

    def __init__(self, entries):
        self.entries = entries
        self.calls = 0
        self.moves = {}         # call number -> entries from then on

    def __call__(self, relpaths):
        self.calls += 1
        self.entries = self.moves.get(self.calls, self.entries)
        return {relpath: self.entries.get(relpath) for relpath in relpaths}


def follower(repo, head, tunables, closed=lambda: False) -> IndexFollower:
    return IndexFollower(GitRunner(str(repo)), "meta/", cond=threading.Condition(),
                         git_lock=threading.RLock(), head_entries=head, closed=closed,
                         tunables=tunables)


def test_committed_paths_fall_due_after_the_delay_and_an_update_indexes_them(
        git_repo, git_tunables):
    one = blob(git_repo, b"one\n")
    head = Head({"volumes/v1": (FILE_MODE, bytes.fromhex(one))})
    index = follower(git_repo, head, git_tunables)
    git_tunables.index_delay = 30
    before = time.monotonic()
    index.committed(["volumes/v1"])
    assert index.due >= before + 30 and index.pending == {"volumes/v1"}
    index.update(only_if_due=True)          # not due yet: nothing done
    assert head.calls == 0 and index.pending == {"volumes/v1"}
    index.want([])                          # due now
    index.update(only_if_due=True)
    assert git(git_repo, "ls-files", "-s", "meta") == f"100644 {one} 0\tmeta/volumes/v1\n"
    assert index.pending == set() and index.due is None and index.gap > 0


def test_a_path_whose_head_moved_during_the_update_stays_pending(git_repo, git_tunables):
    one, two = blob(git_repo, b"one\n"), blob(git_repo, b"two\n")
    head = Head({"volumes/v1": (FILE_MODE, bytes.fromhex(one))})
    head.moves[2] = {"volumes/v1": (FILE_MODE, bytes.fromhex(two))}     # a commit meanwhile
    index = follower(git_repo, head, git_tunables)
    index.want(["volumes/v1"])
    index.update()
    assert index.pending == {"volumes/v1"} and index.due is not None
    index.update()
    assert git(git_repo, "ls-files", "-s", "meta") == f"100644 {two} 0\tmeta/volumes/v1\n"
    assert index.pending == set()


def test_a_path_gone_from_head_leaves_the_index_and_a_closed_history_does_nothing(
        git_repo, git_tunables):
    git(git_repo, "rm", "-q", "--cached", "README")
    os.makedirs(git_repo / "meta")
    (git_repo / "meta" / "gone").write_text("x\n")
    git(git_repo, "add", "meta/gone")
    index = follower(git_repo, Head({}), git_tunables, closed=lambda: True)
    index.want(["gone"])
    index.update()
    assert git(git_repo, "ls-files") == "meta/gone\n"       # closed: untouched
    index = follower(git_repo, Head({}), git_tunables)
    index.want(["gone"])
    index.update()
    assert git(git_repo, "ls-files") == ""
