"""gitpersist.history.worker: the async queue, housekeeping children, and
the background thread's due times and retries."""

from __future__ import annotations

import contextlib
import logging
import threading
import time

from helpers import child_pids, eventually

from gitpersist import HistoryError, green
from gitpersist.history.worker import GC, REPACK, CommitQueue, Housekeeping, Worker
from gitpersist.history.runner import GitRunner


def test_the_queue_is_due_after_the_delay_and_makes_one_message(git_tunables):
    queue = CommitQueue(threading.Condition(), git_tunables)
    git_tunables.commit_delay = 60
    assert not queue and queue.due is None
    queue.put(["a"], "volumes a: created")
    due = queue.due
    assert queue and due >= time.monotonic() + 59
    queue.put(["b", "a"], "volumes b: created\n\ndetails\n")
    assert queue.due == due and queue.holds("b") and not queue.holds("c")
    items = queue.snapshot()
    assert CommitQueue.message(items[:1]) == "volumes a: created"
    assert CommitQueue.message(items) == (
        "gitpersist: 2 changes in one commit\n\n- volumes a: created\n- volumes b: created\n  \n  details\n")
    queue.put(["c"], "later")
    queue.done(len(items))          # what came meanwhile stays, due again
    assert queue.snapshot() == [(["c"], "later")] and queue.due is not None
    queue.done(1)
    assert not queue and queue.due is None


def test_housekeeping_falls_due_every_n_commits_once(git_repo, git_tunables):
    house = Housekeeping(GitRunner(str(git_repo)), threading.Condition(), git_tunables)
    git_tunables.repack_every, git_tunables.gc_every = 2, 4
    for _ in range(3):
        house.committed()
    assert house.jobs == [REPACK] and house.ready and not house.idle
    house.committed()
    assert house.jobs == [REPACK, GC]          # the repack due again is not added twice


def test_a_failed_child_is_reaped_and_logged(git_repo, git_tunables, caplog):
    before = child_pids()
    cond = threading.Condition()
    house = Housekeeping(GitRunner(str(git_repo)), cond, git_tunables)
    house.jobs.append(["no-such-command"])
    with cond:
        house.start()
    assert house.child is not None and not house.ready
    with caplog.at_level(logging.WARNING, logger="gitpersist.history.worker"):
        with cond:
            assert eventually(lambda: house.reap() or house.child is None)
    assert "git no-such-command exited with 1" in caplog.text
    assert house.idle and child_pids() <= before


def test_a_repack_git_does_not_know_leaves_packs_to_gc(git_repo, git_tunables):
    cond = threading.Condition()
    house = Housekeeping(GitRunner(str(git_repo)), cond, git_tunables)

    class OldGit(GitRunner):        # a git without --geometric: a usage error, 129
        def start(self, args):
            child = super().start(["repack", "--no-such-option"])
            child.args = [self.executable, *args]
            return child
    house.runner = OldGit(str(git_repo))
    house.jobs.append(REPACK)
    with cond:
        house.start()
        assert eventually(lambda: house.reap() or house.child is None)
    assert git_tunables.repack_every == 1 << 62


def test_stop_lets_a_child_finish_then_stops_it(git_repo, git_tunables):
    before = child_pids()
    cond = threading.Condition()
    house = Housekeeping(GitRunner(str(git_repo)), cond, git_tunables)
    house.jobs.append(["-c", "alias.hang=!exec sleep 30", "hang"])
    with cond:
        house.start()
    git_tunables.child_wait = 0.2
    started = time.monotonic()
    house.stop()
    assert time.monotonic() - started < 10 and house.child is None
    assert eventually(lambda: child_pids() <= before)


def test_the_worker_drains_when_due_and_retries_a_failure(git_repo, git_tunables, caplog):
    cond = green.Condition()     # the worker sleeps on its notify hook
    runner = GitRunner(str(git_repo))
    queue = CommitQueue(cond, git_tunables)
    drained, locked = [], []

    class Index:            # nothing to index
        due = None

    @contextlib.contextmanager
    def lock():
        locked.append(True)
        yield

    def drain():
        if not drained:
            drained.append("failed")
            raise HistoryError("the branch is busy")
        drained.append(queue.snapshot())
        queue.done(len(queue.snapshot()))

    worker = Worker("gitpersist-history test", cond=cond, lock=lock, drain=drain, queue=queue,
                    index=Index(), housekeeping=Housekeeping(runner, cond, git_tunables),
                    tunables=git_tunables, root="store")
    git_tunables.commit_delay, git_tunables.retry_delay = 0.05, 0.2
    worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gitpersist.history.worker"):
            queue.put(["a"], "m")
            assert eventually(lambda: len(drained) == 2)
        assert drained[1] == [(["a"], "m")] and len(locked) == 2
        assert "background commit failed, retrying in 0.2 s: the branch is busy" in caplog.text
    finally:
        assert worker.stop() and not worker.stop()
        worker.join(5)
    assert not [t for t in threading.enumerate() if t.name == "gitpersist-history test"]
