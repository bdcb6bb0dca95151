"""`Syncer`: when a store syncs, one sync at a time, and the rounds of one.

* **Policies**: ``on_open`` (once, in the constructor; a failure is logged
  and the store opens anyway), ``after_commit`` (in the background thread
  soon after each commit, and once more in `close` if commits are still
  unsent), ``every`` (every N seconds, in that thread).  A failed automatic
  sync is logged as a warning and retried after `retry_delay` seconds (or
  at the next period).
* **One sync at a time** per repository: a mutex for the threads of this
  process (made again if eventlet patched threading since,
  `gitpersist.locking.Mutex`) and the sync lock file
  ``<git common folder>/gitpersist-sync.lock`` for other processes (a
  ``flock``, `gitpersist.locking.FileLock`); waiting longer than
  `lock_timeout` seconds for it fails the sync.
* **A sync**: the store's pending commits, the remote's branch
  (`gitpersist.sync.remote`), then up to `attempts` rounds of fetch,
  integrate under the store's write lock (`gitpersist.sync.integrate`) and
  push.  A rejected push sleeps a random 0.05-0.3 s times the round (two
  hosts do not retry in lockstep) and goes round again.
* `close` stops the background thread after its current sync.
* **eventlet patching after the store opened**: the thread, real, cannot
  share locks with green threads, so a green thread takes its place (same
  policies, same state: commits unsent are still sent) at the first write
  or read that sees the patching (`green.on_patching`), or failing that
  (the look came from a real thread of ours) at the next commit or sync;
  it waits on a condition made after the patching.  The real thread is
  woken through the condition of before (its waiter lock is real, so a
  green notify wakes it), drops a sync under way before its next step
  that takes a store lock (``_HandedOver``: left unsent, for the green
  thread), and parks for good
  (`green.park`: a thread ending after the patching makes threading's
  bookkeeping print a KeyError traceback); `close` stops and joins the
  green one.  Tests: ``tests/test_sync_syncer.py``
  (``test_after_eventlet_patched_threading_syncs_run_green...``),
  ``tests/test_eventlet.py`` (``test_a_syncing_store_under_eventlet``,
  ``test_the_plugin_syncing_under_eventlet``).
  Residuals, as the history worker's: a commit drained by the history's
  real thread at the very moment of the patching is sent at the next
  commit, sync or close, not at once; a step under way in the real thread
  at the patching (a flush, an integration: `gitpersist.locking` keeps
  green writers out meanwhile) finishes on locks eventlet made green.

Lock order: the mutex -> the sync lock -> the store's write lock (taken by
the flush and the integration; see `gitpersist.locking`).  The condition
guarding the policy state is a leaf.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import random
import threading
import time
import weakref

from ..errors import ConfigError, GitpersistError, HistoryError, StoreError, SyncError
from ..green import green_threads, in_own_thread, on_patching, own_thread, park
from ..locking import FileLock, Mutex, thread_lock
from .integrate import Integrator
from .journal import Journal
from .plumbing import LocalGit
from .port import StorePort
from .remote import Remote
from .report import SyncReport

LOG = logging.getLogger(__package__)

SYNC_LOCK = "gitpersist-sync.lock"     # in the repository's (common) git folder


class Syncer:
    """Syncs `store` with the git remote named `remote` (see the package
    docstring).  Created by the store; `close` stops its thread.  `link`
    and `integrator` replace the parts that talk to the remote and apply
    its commits (tests hand in fakes)."""

    attempts = 5                # integrate-and-push rounds before giving up
    network_timeout = 120.0     # seconds for one ls-remote, fetch or push
    local_timeout = 120.0       # seconds for one local git command
    lock_timeout = 600.0        # seconds to wait for another process's sync
    retry_delay = 5.0           # seconds before an automatic sync retries

    def __init__(self, store: StorePort, remote: str, *, every: float | None = None,
                 on_open: bool = False, after_commit: bool = False,
                 link: Remote | None = None, integrator: Integrator | None = None) -> None:
        history = store.history
        if history is None:
            raise ConfigError(f"remote: {remote!r} needs git true (syncing goes through git)")
        self._store = store
        self.remote = remote
        self.every = None if every is None else float(every)
        self.after_commit = after_commit
        self.git = LocalGit.of(history, timeout=self.local_timeout)
        self.link = link or Remote(remote, self.git, self)
        self.integrator = integrator or Integrator(store, remote, git=self.git)
        self._mutex = Mutex(thread_lock)
        self._file_lock = FileLock(os.path.join(history.common_dir, SYNC_LOCK),
                                   mode=store.options.file_mode)
        # over a Lock, not the default RLock: eventlet's patching swaps the RLocks
        # it finds for green ones, which breaks a Condition made before it
        self._cond = threading.Condition(threading.Lock())
        self._unsent = False        # commits since the last successful sync
        self._due: float | None = None
        self._stopping = self._closed = False
        self._thread: threading.Thread | None = None
        self._green = green_threads()   # when the thread of now started
        if on_open:
            try:
                self.sync()
            except GitpersistError as exc:
                LOG.warning("%s: sync on open failed, the store opens anyway: %s",
                            store.root, exc)
        if self.every is not None or after_commit:
            self._due = None if self.every is None else time.monotonic() + self.every
            self._start()
            if not self._green:
                on_patching(self._renew)
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    @property
    def lock_file(self) -> str:
        """The sync lock file."""
        return self._file_lock.path

    def sync(self) -> SyncReport:
        """Fetch, integrate, push (see the package docstring); raise
        `SyncError` if that fails."""
        if self._closed:
            raise SyncError(f"sync of {self._store.root} with {self.remote!r}: store is closed")
        self._renew()
        with self._mutex.current(idle=not self._mutex.lock.locked()):
            try:
                self._file_lock.acquire(self.lock_timeout)
            except TimeoutError:
                raise SyncError(f"sync with {self.remote!r}: {self.lock_file} still held by "
                                f"another process after {self.lock_timeout} s") from None
            try:
                self._mark(unsent=False)
                try:
                    return self._sync()
                except BaseException:
                    self._mark(unsent=True)
                    raise
            finally:
                self._file_lock.release()

    def committed(self) -> None:
        """Called by the store after each commit (or queued commit)."""
        self._renew()
        self._mark(unsent=True, notify=True)

    def _mark(self, *, unsent: bool, notify: bool = False) -> None:
        """Set whether commits are unsent.  A real thread of ours after the
        patching (the history's, draining at it; ours, handing over) takes
        no green lock: a plain store, seen by the green thread at its next
        look."""
        if in_own_thread() and green_threads():
            self._unsent = unsent
            return
        cond = self._cond
        with cond:
            self._unsent = unsent
            if notify:
                cond.notify_all()

    def close(self) -> None:
        """Stop the background thread (after its current sync); with
        ``sync_after_commit``, send what is still unsent, once."""
        cond = self._cond
        with cond:
            if self._stopping:
                return
            self._stopping = True
            cond.notify_all()
        atexit.unregister(self._atexit)
        thread = self._thread
        if (thread is not None and thread is not threading.current_thread()
                and self._green == green_threads()):    # else it parked: see _loop
            thread.join(self.network_timeout * 3)
        if self.after_commit and self._unsent:
            try:
                self.sync()
            except GitpersistError as exc:
                LOG.warning("%s: last sync with %r failed, commits stay local until the "
                            "next sync: %s", self._store.root, self.remote, exc)
        self._closed = True
        mutex = self._mutex.lock
        if mutex.acquire(blocking=False):       # else a sync still runs: it keeps the file
            try:
                self._file_lock.close()
            finally:
                mutex.release()

    # -- the background thread -------------------------------------------------

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._loop, args=(self._cond, self._green),
                                        daemon=True, name=f"gitpersist-sync {self._store.root}")
        self._thread.start()
        own_thread(self._thread)

    def _renew(self) -> None:
        """Once eventlet patched threading after the thread started: start a
        green thread in its stead, with a condition made now (green), and
        wake the real one (it parks).  Only from a green thread: one
        started from a real thread would wait for that thread's hub."""
        if (self._green or self._thread is None or self._stopping
                or not green_threads() or in_own_thread()):
            return
        old = self._cond
        with old:
            self._green = True
            self._cond = threading.Condition(threading.Lock())
            old.notify_all()
        LOG.info("%s: eventlet patched threading after the store opened: automatic syncs "
                 "with %r go on in a green thread", self._store.root, self.remote)
        self._start()

    def _loop(self, cond: threading.Condition, green: bool) -> None:
        """The thread: `cond` and `green` are its own (see `_renew`)."""
        while self._wait_for_turn(cond, green):
            failed = self._attempt()
            if failed is None:
                break
            self._schedule(cond, green, failed)
        if green != green_threads():
            park()      # a real thread after the patching: see the package docstring

    def _wait_for_turn(self, cond: threading.Condition, green: bool) -> bool:
        """Wait until a sync is due; False once the thread is to end."""
        with cond:
            while True:
                if self._stopping or green != green_threads():
                    return False
                now = time.monotonic()
                if self._due is not None and now >= self._due:
                    return True
                if self.after_commit and self._unsent:
                    return True
                cond.wait(None if self._due is None else self._due - now)

    def _attempt(self) -> bool | None:
        """One automatic sync; whether it failed (None: the store is closing)."""
        try:
            self.sync()
            return False
        except _HandedOver:
            return None
        except Exception as exc:    # the thread lives on: retry later
            if isinstance(exc, StoreError | HistoryError) and self._stopping:
                return None
            LOG.warning("%s: automatic sync with %r failed, retrying: %s",
                        self._store.root, self.remote, exc,
                        exc_info=not isinstance(exc, GitpersistError | OSError))
            return True

    def _schedule(self, cond: threading.Condition, green: bool, failed: bool) -> None:
        """When the next automatic sync is due."""
        with cond:
            now = time.monotonic()
            if self.every is not None:
                self._due = now + (min(self.every, self.retry_delay) if failed
                                   else self.every)
            elif failed:
                self._due = now + self.retry_delay
            else:
                self._due = None
            due = self._due
            if failed and self.after_commit and due is not None \
                    and green == green_threads():
                # wait for the retry time even though commits are unsent
                cond.wait_for(lambda: self._stopping or time.monotonic() >= due,
                              self.retry_delay)

    @staticmethod
    def _hand_over() -> None:
        """In a real thread of ours once eventlet patched: stop before the
        next lock of the store (all green now); the sync stays unsent."""
        if in_own_thread() and green_threads():
            raise _HandedOver()

    # -- one sync ----------------------------------------------------------------

    def _sync(self) -> SyncReport:
        self._hand_over()
        self.link.refresh()
        self._hand_over()
        self._store.flush()
        ref = self.git.branch_ref(self.remote)
        remote_ref = self.link.upstream(ref)
        report = SyncReport(self.remote, remote_ref, self.git.rev(ref), None, None)
        for attempt in range(1, self.attempts + 1):
            report.attempts = attempt
            remote_head = self.link.fetch(remote_ref)
            report.remote_head = remote_head
            self._hand_over()
            with self._store.exclusive():     # the store's write lock
                head = self.integrator.integrate(ref, remote_head, report,
                                                 attempts=self.attempts)
            report.head = head
            if head is None or head == remote_head:
                return report
            if self.link.push(head, remote_ref, remote_head):
                report.pushed = True
                return report
            LOG.info("%s: push to %r rejected (the remote moved); again", self.git.worktree,
                     self.remote)
            time.sleep(random.uniform(0.05, 0.3) * attempt)    # two hosts: don't lockstep
        raise SyncError(f"sync with remote {self.remote!r} ({self.link.url}): the push was "
                        f"rejected {self.attempts} times (the remote keeps moving); local "
                        "commits are kept, the next sync tries again")


class _HandedOver(Exception):
    """The real thread saw the patching: the green one does this sync."""


def finish_interrupted(store: StorePort) -> None:
    """Finish a sync that died between writing the files it received and
    moving the branch (its note is in the git folder: `gitpersist.sync.journal`).
    Called by the store at every git open, with the write lock held, before
    the history's recovery: otherwise recovery would commit those files as
    a local change made at the reopening, which would then outrank later
    remote changes.  Finishing is merging the commit the sync was applying
    into the branch as it is now (the same rules as a sync: local commits
    made meanwhile keep their times).  A failure is logged; recovery then
    takes over.  No remote is needed."""
    history = store.history
    if history is None:
        return
    note = Journal(history.git_dir, history.prefix).read(store.root)
    if note is not None:
        Integrator(store, note.remote, timeout=Syncer.local_timeout).finish(
            note, attempts=Syncer.attempts)


def _close_at_exit(ref: weakref.ref[Syncer]) -> None:
    syncer = ref()
    if syncer is not None:
        syncer.close()
