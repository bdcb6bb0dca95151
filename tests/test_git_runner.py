"""gitpersist.history.runner: git commands run and waited for, stopped on
timeout, retried past a held index.lock; git status read as store paths."""

from __future__ import annotations

import os
import threading
import time

import pytest
from helpers import child_pids, git

from gitpersist import HistoryError, SyncError, paths
from gitpersist.history.runner import GitRunner, last_lines, parse_status


def test_run_leaves_the_exit_status_to_the_caller_and_output_raises(git_repo):
    runner = GitRunner(str(git_repo))
    assert runner.run(["rev-parse", "--verify", "-q", "nosuchref"]).returncode == 1
    assert runner.text(["rev-parse", "HEAD"]).strip() == git(git_repo, "rev-parse", "HEAD").strip()
    with pytest.raises(HistoryError, match=r"^git cat-file in .* failed: fatal: .*nosuch"):
        runner.output(["cat-file", "-p", "nosuch"])
    with pytest.raises(SyncError):
        GitRunner(str(git_repo), error=SyncError).output(["cat-file", "-p", "nosuch"])


def test_input_and_environment_reach_git(git_repo):
    runner = GitRunner(str(git_repo))
    blob = runner.text(["hash-object", "--stdin"], input=b"hello\n").strip()
    assert blob == "ce013625030ba8dba906f756967f9e9ca394464a"
    echo = ["-c", "alias.show-env=!echo $GIT_TERMINAL_PROMPT $EXTRA", "show-env"]
    assert runner.text(echo, env={"EXTRA": "given"}) == "0 given\n"


def test_a_command_past_its_timeout_is_stopped_and_reaped(git_repo):
    before = child_pids()
    runner = GitRunner(str(git_repo), timeout=0.3)
    started = time.monotonic()
    with pytest.raises(HistoryError, match=r"git -c \(the test\) did not finish within 0.3 s"):
        runner.run(["-c", "alias.hang=!exec sleep 30", "hang"], what="the test")
    assert time.monotonic() - started < 10
    assert child_pids() <= before


def test_a_held_index_lock_is_waited_for(git_repo):
    runner = GitRunner(str(git_repo))
    (git_repo / "new.txt").write_text("new\n")
    add = ["update-index", "--add", "new.txt"]          # git locks the index to change it
    lock = git_repo / ".git" / "index.lock"
    lock.write_text("")
    failed = runner.run_retrying_index(add, lock_timeout=0.1)
    assert failed.returncode != 0 and b"index.lock" in failed.stderr
    threading.Timer(0.3, lock.unlink).start()
    started = time.monotonic()
    done = runner.run_retrying_index(add, lock_timeout=5)
    assert done.returncode == 0 and time.monotonic() - started >= 0.25
    assert git(git_repo, "ls-files", "new.txt") == "new.txt\n"


def test_a_failure_that_is_not_the_lock_is_not_retried(git_repo):
    runner = GitRunner(str(git_repo))
    started = time.monotonic()
    run = runner.run_retrying_index(["update-index", "--no-such-option"], lock_timeout=5)
    assert run.returncode != 0 and time.monotonic() - started < 2


def test_changed_store_files_are_what_git_status_reports_below_the_store(git_repo):
    store = git_repo / "meta"
    committed = paths.record_path("volumes", "committed")
    for relpath in (committed, paths.record_path("volumes", "kept")):
        os.makedirs(store / os.path.dirname(relpath), exist_ok=True)
        (store / relpath).write_text("{}\n")
    git(git_repo, "add", ".")
    git(git_repo, "-c", "user.name=U", "-c", "user.email=u@x", "commit", "-q", "-m", "records")
    changed = paths.record_path("volumes", "changed")
    ignored = paths.record_path("snapshots", "ignored")
    for relpath in (changed, ignored):
        os.makedirs(store / os.path.dirname(relpath), exist_ok=True)
        (store / relpath).write_text("{}\n")
    (store / committed).write_text('{"n": 1}\n')
    (store / ".gitignore").write_text("snapshots/\n")
    (store / "notes.txt").write_text("not a record\n")
    (git_repo / "outside.json").write_text("{}\n")
    found = GitRunner(str(git_repo)).changed_store_files("meta/")
    assert found == {committed, changed, ignored}


def test_parse_status_keeps_store_files_below_the_prefix():
    record = paths.record_path("volumes", "v1")
    out = "\0".join([f" M m/{record}", f"?? m/{record}x", f"!! other/{record}",
                     "?? m/.gitpersist/format.json", "?? m/.gitpersist/write.lock", ""])
    assert set(parse_status(out, "m/")) == {record, ".gitpersist/format.json"}
    assert parse_status(f"A  {record}\0", "") == {record: "A "}


def test_last_lines():
    assert last_lines(b"fatal: one\n\n  two  \nthree\nfour\n") == "two / three / four"
    assert last_lines("", 3) == "no message"
