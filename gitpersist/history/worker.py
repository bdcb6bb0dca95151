"""The background work of a history: asynchronous commits, index updates
and housekeeping, in one thread.

Guarantees:

* **Asynchronous mode.**  With ``commit_mode="async"`` a change is only
  queued (`CommitQueue`); the thread commits within `commit_delay` seconds,
  one commit for everything queued (first line "N changes", the body lists
  each message), as the files are on disk at that moment, under the store
  lock.  A failed step is retried `retry_delay` seconds later; the thread
  lives on.
* **Housekeeping.**  Every `repack_every` commits ``git repack -d -l
  --geometric=2`` rolls our small packs up (its cost follows the small
  packs, not the repository); every `gc_every` commits ``git gc --auto``
  does what git finds due.  One child at a time, reaped by the thread;
  `Housekeeping.stop` lets it finish for `child_wait` seconds, then stops
  it (both commands are safe to interrupt).
* **eventlet patching after the store opened.**  The thread, real, steps
  aside at its next look and parks without touching a green lock; the
  writers then commit every change at once and run the index update and
  housekeeping that fell due, at their next change, and `flush` and
  `close` as always (`Worker`; tests: ``tests/test_eventlet.py``,
  ``tests/test_green.py``).
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from ..green import Condition, Wakeup, green_threads, own_thread, park
from ..errors import GitpersistError, StoreError
from ..messages import clean_message
from .index import IndexFollower
from .runner import GitRunner

LOG = logging.getLogger(__name__)

# Housekeeping: roll the small packs up into packs of geometrically growing
# sizes (git >= 2.32; cost ~ the small packs, not the repository), and let
# git decide about the rest.  gc.autoDetach=false: a detached gc would
# outlive us, unreaped.
REPACK = ["repack", "-d", "-l", "-q", "--geometric=2"]
GC = ["-c", "gc.autoDetach=false", "gc", "--auto", "--quiet"]
_REAP_EVERY = 0.2           # seconds between two looks at a running child


class WorkerTunables(Protocol):
    """What the background work reads, live, of its owner (a History);
    `repack_every` is also written (git < 2.32 cannot repack that way)."""
    commit_delay: float         # seconds an async change waits for its commit
    retry_delay: float          # seconds before retrying a failed background step
    repack_every: int           # commits between two rollups of our small packs
    gc_every: int               # commits between two ``git gc --auto`` runs
    child_wait: float           # seconds stop() lets a running repack or gc finish


class CommitQueue:
    """The asynchronous changes not committed yet: (relpaths, message)
    items, and when the oldest one is due.

    Lock rules: guarded by `cond` (the history's); every method takes it,
    except `message`, and truth testing (an unlocked peek, as a hint)."""

    def __init__(self, cond: threading.Condition, tunables: WorkerTunables) -> None:
        self._cond = cond
        self.tunables = tunables
        self.items: list[tuple[list[str], str]] = []
        self.due: float | None = None

    def __bool__(self) -> bool:
        return bool(self.items)

    def put(self, relpaths: list[str], message: str) -> None:
        with self._cond:
            self.items.append((relpaths, message))
            if self.due is None:
                self.due = time.monotonic() + self.tunables.commit_delay
            self._cond.notify_all()

    def holds(self, relpath: str) -> bool:
        """Whether a queued change names `relpath`."""
        with self._cond:
            return any(relpath in relpaths for relpaths, _ in self.items)

    def snapshot(self) -> list[tuple[list[str], str]]:
        with self._cond:
            return list(self.items)

    def done(self, count: int) -> None:
        """The first `count` items are committed."""
        with self._cond:
            del self.items[:count]
            self.due = (time.monotonic() + self.tunables.commit_delay) if self.items else None

    @staticmethod
    def message(items: list[tuple[list[str], str]]) -> str:
        """One commit message for `items`."""
        if len(items) == 1:
            return items[0][1]
        return f"gitpersist: {len(items)} changes in one commit\n\n" + "".join(
            "- " + clean_message(text).rstrip("\n").replace("\n", "\n  ") + "\n"
            for _, text in items)


class Housekeeping:
    """The repack and gc runs due, and the one git child running them.

    Lock rules: guarded by `cond` (the history's, re-entrant): `start` and
    `reap` are called with it held; `committed` and `stop` take it; `idle`
    and `ready` are unlocked peeks."""

    def __init__(self, runner: GitRunner, cond: threading.Condition,
                 tunables: WorkerTunables) -> None:
        self.runner = runner
        self.tunables = tunables
        self._cond = cond
        self.commits = 0
        self.jobs: list[list[str]] = []        # commands due, in order
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def idle(self) -> bool:
        """Nothing due, nothing running."""
        return not self.jobs and self.child is None

    @property
    def ready(self) -> bool:
        """A command is due and none runs."""
        return bool(self.jobs) and self.child is None

    def committed(self) -> None:
        """One more commit: schedule what falls due."""
        with self._cond:
            self.commits += 1
            for every, job in ((self.tunables.repack_every, REPACK),
                               (self.tunables.gc_every, GC)):
                if self.commits % every == 0 and job not in self.jobs:
                    self.jobs.append(job)

    def start(self) -> None:
        """Start the next command, if one is due and none runs."""
        if not self.ready:
            return
        self.child = self.runner.start(self.jobs.pop(0))
        self._cond.notify_all()

    def reap(self) -> None:
        """Collect the child if it ended (logging a failure)."""
        child = self.child
        if child is None or child.poll() is None:
            return
        assert child.stderr is not None
        error = child.stderr.read().decode(errors="replace").strip()
        child.stderr.close()
        args = [str(arg) for arg in child.args[1:]]     # type: ignore[index]
        if child.returncode == 129 and args == REPACK:
            # git < 2.32 has no --geometric: leave the packs to gc --auto
            # (a full repack past gc.autoPackLimit packs).
            self.tunables.repack_every = 1 << 62
        if child.returncode:
            LOG.warning("%s: git %s exited with %s: %s", self.runner.worktree,
                        " ".join(args), child.returncode, error)
        self.child = None

    def stop(self) -> None:
        """Let a running child finish for `child_wait` seconds, then stop it."""
        with self._cond:
            child, self.child = self.child, None
        if child is None:
            return
        try:
            child.wait(self.tunables.child_wait)
        except subprocess.TimeoutExpired:
            child.terminate()   # git repack and gc are safe to stop: they rename into place
            child.wait()
        assert child.stderr is not None
        child.stderr.close()


class Worker:
    """The background thread of the history of `root`: commits the queue
    when it falls due (`drain`, called with the store lock `lock` held),
    runs the index update when due, starts and reaps housekeeping.

    Lock rules: reads the queue's, the index's and the housekeeping's
    times under `cond` (the history's), then sleeps on a `green.Wakeup`
    that every notify of `cond` sets, holding nothing; takes the store lock
    only to drain, and nothing while git runs.  `stop` sets `closing` under
    `cond`; the thread ends at its next look.

    **eventlet patching after the thread started** (`inline`): the thread
    is real and the locks are green from then on, so it stops: at its next
    look it parks for good (`green.park`: ending would print a traceback)
    without touching `cond` again, and the writers do its work, holding
    the store lock: the history commits an asynchronous change at once,
    and calls `run_due` after each change (the index update and
    housekeeping that fell due; `flush` and `close` update the index).  The
    thread may be in the middle of a look at the moment of the patching:
    see `green.Condition` for its one section, and `gitpersist.locking`
    for a drain (the green writer waits for it).  Such a drain finishes on
    the history's locks that eventlet made green meanwhile; a green reader
    of history (`History.versions`, `History.read`) that takes the
    history's repo lock in those milliseconds would meet the hub's "Cannot
    switch to a different thread" (not met in the tests; a drain there
    needs a change queued and due at the very moment of the patching)."""

    def __init__(self, name: str, *, cond: Condition,
                 lock: Callable[[], AbstractContextManager[object]], drain: Callable[[], None],
                 queue: CommitQueue, index: IndexFollower, housekeeping: Housekeeping,
                 tunables: WorkerTunables, root: str) -> None:
        self.queue, self.index, self.housekeeping = queue, index, housekeeping
        self.tunables = tunables
        self.root = root
        self.closing = False
        self._cond = cond
        self._lock = lock
        self._drain = drain
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._green = green_threads()
        self._wake = Wakeup()       # a plain lock: never greened, so a green notify wakes us
        cond.on_notify = self._wake.set

    @property
    def inline(self) -> bool:
        """True once eventlet patched threading after the thread started:
        the writers do its work (`run_due`)."""
        return green_threads() != self._green

    def start(self) -> None:
        self._thread.start()
        own_thread(self._thread)

    def stop(self) -> bool:
        """Ask the thread to end; False if that was asked already."""
        with self._cond:
            if self.closing:
                return False
            self.closing = True
            self._cond.notify_all()
            return True

    def join(self, timeout: float) -> None:
        """Wait for the thread (not from the thread itself; not once it
        parked)."""
        if self._thread is not threading.current_thread() and not self.inline:
            self._thread.join(timeout)

    def run_due(self) -> None:
        """Do what is due now (commit the queue, update the index, start or
        reap housekeeping); a failed step is retried `retry_delay` seconds
        later.  The thread's work, and the writers' once `inline`."""
        queue, index, housekeeping = self.queue, self.index, self.housekeeping
        now = time.monotonic()
        try:
            if queue.due is not None and queue.due <= now:
                with self._lock():
                    if self.closing:       # close() does what is left
                        return
                    self._drain()
            if index.due is not None and index.due <= now:
                index.update(only_if_due=True)
            with self._cond:
                housekeeping.reap()
                if not self.closing:
                    housekeeping.start()
        except Exception as exc:     # the thread must live on: retry later
            if isinstance(exc, StoreError) and self.closing:
                return
            LOG.warning("%s: background commit failed, retrying in %s s: %s",
                        self.root, self.tunables.retry_delay, exc,
                        exc_info=not isinstance(exc, GitpersistError | OSError))
            with self._cond:
                retry = time.monotonic() + self.tunables.retry_delay
                if queue.due is not None:
                    queue.due = max(queue.due, retry)
                if index.due is not None:
                    index.due = max(index.due, retry)

    def _run(self) -> None:
        while not self.closing and not self.inline:
            wait = self._next_wait()
            if wait is None or wait > 0:
                self._wake.wait(wait)
            elif not self.inline:
                self.run_due()
        if self.inline:
            park()

    def _next_wait(self) -> float | None:
        """Seconds until something is due (0: now; None: nothing is)."""
        queue, index, housekeeping = self.queue, self.index, self.housekeeping
        with self._cond:
            housekeeping.reap()
            now = time.monotonic()
            due = min((t for t in (queue.due, index.due) if t is not None), default=None)
            if (due is not None and due <= now) or housekeeping.ready:
                return 0.0
            wait = None if due is None else due - now
            if housekeeping.child is not None:
                wait = _REAP_EVERY if wait is None else min(wait, _REAP_EVERY)
            return wait
