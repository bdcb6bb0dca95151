"""Git history of a store: every change a commit, at a cost that does not
grow with the store.

`History` is composed of the git layer's parts, each holding its own
guarantees: `repo` (which repository, who commits), `runner` (git
commands), `objects` (trees and one pack per commit: cost independent of
the store's size), `refs` (the branch moved by compare-and-swap: safe next
to other git users), `commit` (a commit of store paths on top of HEAD),
`index` (the index follows), `worker` (asynchronous commits,
housekeeping).

Guarantees kept here:

* **One change, one commit.**  `History.record` turns the changed record
  files into one commit whose message says what changed; a batch is one
  commit.  A change that leaves the tree as it was (a record rewritten
  unchanged) makes no commit.  Commits hold the store's paths only: the
  rest of the tree comes unchanged from HEAD, so the user's own staged,
  unstaged and untracked work in the repository is never committed.
  A commit made by another git user while ours is built is kept: ours is
  rebuilt on top of it (`commit`: `refs.Refs.set_if_equals` refuses the
  move).
  Sync-mode writers of this process that write while a commit is due
  share it (`group`): its message lists each change's, and a record
  written twice before its commit gets a commit for each version.
* **Crashes lose nothing.**  Record files are durable before `record` is
  called.  A process that dies before its commit leaves files that differ
  from HEAD; `recover` (run at every open that finds the write lock free,
  else at the process's first write: `recover_quietly`) commits them in
  one commit.
  The objects are on disk before the ref moves (`objects`, `refs`): ``git
  fsck`` stays clean.  Temp files of a dead writer are removed at open; a
  branch lock left by a killed writer is removed once `stale_lock_age`
  seconds old, so the next open waits that long, then commits.
* **Asynchronous mode.**  With ``commit_mode="async"`` `record` only queues
  (`worker`).  Commits are made of the files as they are on disk at that
  moment, under the store lock (the bytes written while the file's
  signature says it is unchanged: `group.Written`), so a later write by another process is
  never overwritten in history by an older queued one.  Bound: a crash
  drops at most the last `commit_delay` seconds of *commits*, never a
  change: the files are on disk and the next open's recovery commits them
  in one commit.  The same folding happens without a crash when another
  process writes a record whose async change is still queued here: its
  commit then holds both changes (the queued version is not in history of
  its own, and the other commit's message describes only its own change).
  Where several processes write the same records and every version must be
  in history, use sync mode: a sync-mode write first commits a record it
  finds changed and not committed (`commit_pending`), so the other
  process's version keeps a commit of its own (with a generic message).
  Once eventlet patched threading after the store opened, the writer
  commits at once instead, with whatever was queued (the thread parked:
  `worker`); the index then follows at the next change after
  `index_delay`, and at `flush` and `close`.
* **No leaks.**  One `git.Repo` per history (its ``git cat-file`` processes
  end in `close`), one background thread, at most one git child.
  GitPython is not thread-safe: every use of the repo is serialised by one
  lock.

Locks, in the only order they are taken (the one place it is written):

    the store's write lock (`lock`)
      -> the index update's turn (`index.IndexFollower`)
        -> History._git_lock (GitPython, the object store, commit building:
           `commit.Committer`)
          -> History._cond (queue, index schedule, housekeeping, closing)

A thread holding one never waits for one above it.  git runs holding
neither `_git_lock` nor `_cond` (the index update), or holding `_git_lock`
only (``git status`` at recovery, ``git log``).

Costs (2 cores, ext4, git 2.39, a shared and busy machine;
``benchmarks/commit_scaling.py`` prints the figures of a run, which it
measures interleaved with cinderlib's db plugin; the costs of the parts
are in their modules).  A run of the benchmark (median ms per put, 1k / 20k
records): sync 2.7 / 2.7 without fsync, 5.0 / 5.1 with; async (what the
writer waits for) 1.2 / 1.1 and 1.8 / 1.7; cinderlib's db plugin
set_volume, interleaved: 5.5.  With fsync a versioned write costs 7 fsyncs
against sqlite's ~3, so on a machine whose disk is busy it can cost more than the
db plugin; async mode shares one commit's fsyncs among every write of
`commit_delay`, and sync mode among the writers of a group commit.

The fsyncs that remain, and why each is needed (none can go without
weakening "a write that returned survives a power loss, and ``git fsck``
stays clean"; measured on this machine, fsyncs issued from parallel
threads cost as much as in a row, 0.36 against 0.39 ms for three, so
they are not overlapped either):

* the record file, then its folder (`gitpersist.files`): the write itself,
  durable before its commit so that recovery never commits an older file;
* the pack and its index, then the pack folder (`objects.write_pack`): git
  finds objects only through an index, and a ref must never reach an
  object that is not on disk;
* the ref's lock file, then the ref folder after the rename (`refs`): the
  commit itself.  The reflog is appended without one (git does the same:
  it is a log, and a lost line loses no object).
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Literal

from .. import files, green
from ..errors import GitpersistError, HistoryError
from ..layout import META_FILES, Change
from .commit import Committer
from .group import Added, GroupCommit, Signature, Written, as_committed
from .index import IndexFollower
from .log import Log, Version
from .objects import ObjectStore
from .refs import Refs
from .repo import Repository
from .runner import GitRunner
from .worker import CommitQueue, Housekeeping, Worker

LOG = logging.getLogger(__name__)


class History:
    """The git history of the store at `root` (see the module docstring).

    `lock` is a context manager factory excluding every other writer of the
    store; `record` and `recover` are called with it held.  The parts are
    public attributes: `repository`, `runner`, `objects`, `refs`, `committer`,
    `index`, `queue`, `group`, `housekeeping`, `log`, `worker`.  The tunables below
    are read live by the parts: set them on the class before opening, or on the
    instance.

    Lock rules: see the module docstring for the order.  `_git_lock` guards
    the repository, the object store and the closed flag; `_cond` the queue,
    the index schedule, the housekeeping and the worker's `closing`."""

    index_delay = 0.5           # seconds between a commit and its index update
    repack_every = 16           # commits between two rollups of our small packs
    gc_every = 1024             # commits between two ``git gc --auto`` runs
    child_wait = 5.0            # seconds close() lets a running repack or gc finish
    git_lock_timeout = 10.0     # seconds to wait for a ref or index lock held by git
    stale_lock_age = 10.0       # a ref lock this old (mtime) was left by a crash
    retry_delay = 1.0           # seconds before retrying a failed background step
    tree_cache_size = 2048      # parsed trees kept (covers 256 shards x 8 types)

    def __init__(self, root: str, *, lock: Callable[[], AbstractContextManager[object]],
                 author: str | None, commit_mode: str, commit_delay: float,
                 fsync: bool, create: bool = True) -> None:
        self.root = root
        self.recovery_due = False   # recovery left by the open to the next write
        self.commit_mode = commit_mode
        self.commit_delay = float(commit_delay)
        self.fsync = fsync
        self._lock = lock
        self._git_lock = threading.RLock()       # GitPython is not thread-safe
        self._cond = green.Condition()
        self._closed = False
        self.repository = repo = Repository(root, author, create=create)
        self.worktree, self.prefix, self.author = repo.worktree, repo.prefix, repo.author
        self.git_dir, self.common_dir = repo.git_dir, repo.common_dir
        self.runner = GitRunner(self.worktree)
        self.objects = ObjectStore(repo.repo, repo.objects_dir, self)
        self.refs = Refs(self.git_dir, self.common_dir, author=self.author,
                         log_refs=repo.log_refs, tunables=self)
        self.committer = Committer(self.objects, self.refs, prefix=self.prefix,
                                   author=self.author, git_dir=self.git_dir,
                                   committed=self._committed)
        self.index = IndexFollower(self.runner, self.prefix, cond=self._cond,
                                   git_lock=self._git_lock,
                                   head_entries=self.committer.head_entries,
                                   closed=lambda: self._closed, tunables=self)
        self.queue = CommitQueue(self._cond, self)
        self.group = GroupCommit(self._cond, lock, self._commit_group)
        self.written = Written(root)        # async writes' bytes, for their commit
        self.housekeeping = Housekeeping(self.runner, self._cond, self)
        self.log = Log(runner=self.runner, objects=self.objects, refs=self.refs,
                       prefix=self.prefix, git_lock=self._git_lock, settle=self._settle,
                       read_file=self._read_file)
        self.worker = Worker(f"gitpersist-history {root}", cond=self._cond, lock=lock,
                             drain=self.commit_queued, queue=self.queue, index=self.index,
                             housekeeping=self.housekeeping, tunables=self, root=root)
        self.worker.start()
        # A daemon thread stopped at interpreter exit could leave a ref lock
        # behind; close() at exit joins it first.
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    # -- writing ------------------------------------------------------------

    def record(self, changes: list[Change], message: str) -> None:
        """Commit `changes` (sync mode) or queue them (async mode).  Called
        with the store lock held, after the files are durable."""
        self._check_open()
        relpaths = [change.relpath for change in changes]
        inline = self.worker.inline     # eventlet patched since the thread started: it parked
        if self.commit_mode == "async" and not inline:
            self.queue.put(relpaths, message)
            return
        try:
            if inline:      # the thread's work, now: with what a failure left queued
                self.queue.put(relpaths, message)
                self.commit_queued()
            else:
                with self._git_lock:
                    self.committer.commit({c.relpath: c.data for c in changes}, message)
        except (OSError, HistoryError) as exc:
            # inline: still queued, the next change or flush retries it
            raise self._retry_later(relpaths, message, exc, queued=inline) from None
        finally:
            if inline:
                self.worker.run_due()

    def record_shared(self, change: Change, signature: Signature | None,
                      message: str) -> int | None:
        """Like `record` for one change, whose writer calls `wait_committed`
        with the ticket returned once it has released the store lock: in
        sync mode the writers that write meanwhile share one commit (group
        commit, `gitpersist.history.group`).  None in async mode (queued),
        and once eventlet was patched after the thread started (`record`
        commits it at once: nothing runs in the background any more).
        `signature`: the file's after the write (None: removed)."""
        self._check_open()
        if self.worker.inline:
            self.record([change], message)
            return None
        if self.commit_mode == "async":
            self.written.add(change, signature)
            self.queue.put([change.relpath], message)
            return None
        return self.group.add(change, signature, message)

    def wait_committed(self, ticket: int) -> None:
        """Return once the change of `ticket` (`record_shared`) is committed;
        called without the store lock.  Raises `HistoryError` as `record`."""
        self.group.wait(ticket)

    def commit_pending(self, relpath: str, data: bytes | None | Literal[False]) -> None:
        """Before a sync-mode change of `relpath` (store lock held), whose
        file holds `data` now (None: absent; False: unreadable, as
        `read_store_file` says; the caller has read it already): if that is
        not what HEAD holds and no commit of ours is queued for it, commit
        it as it is first.  That is another process's asynchronous change
        still queued there, a hand edit, or a crashed writer's leftover: it
        keeps a commit of its own, and the next commit's diff is the change
        its message describes."""
        if self.recovery_due:
            self.recover_quietly()
        if self.commit_mode != "sync":
            return              # our own queued changes look just the same
        if self.group.holds(relpath):
            # a version of ours waiting for its shared commit: commit it now,
            # so that every version of a record keeps a commit of its own
            self.group.drain()
            return
        if self.queue.holds(relpath):
            return
        with self._git_lock:
            if data is False or not self.committer.differing({relpath: data}):
                return
            self.committer.commit({relpath: data}, (
                f"gitpersist: commit {relpath}, changed before this process's next change\n\n"
                "It differed from HEAD: another process's asynchronous commit was\n"
                "still pending, the file was edited by hand, or a writer stopped\n"
                "before committing.\n"))

    def recover(self, explained: Mapping[str, str] | None = None,
                skip: Collection[str] = (), reason: str | None = None) -> list[str]:
        """Commit the store files that differ from HEAD; return their
        relpaths.  Called at open with the store lock held.

        `explained` names files whose change the caller made and can say
        why (relpath -> a commit title, e.g. a declaration just written):
        they are committed first, one commit per title, so that only what
        nobody explains gets the message that suspects a crash.  Files in
        `skip` are left uncommitted (what `fsck --repair` found corrupt);
        `reason` is the title of the rest's commit when the caller knows
        why they differ (default: a title that suspects a crash)."""
        self._check_open()
        explained = explained or {}
        self.objects.remove_stale_temps()
        with self._git_lock:
            candidates = self.runner.changed_store_files(self.prefix)
        with self._git_lock:
            found = {relpath: self._read_file(relpath) for relpath in sorted(candidates)}
            changes = self.committer.differing(
                {relpath: data for relpath, data in found.items()
                 if relpath not in skip and data is not False})
            if changes and set(changes) <= set(META_FILES) and not any(
                    self.committer.head_entries(sorted(changes)).values()):
                self.committer.commit(changes, "gitpersist: new store\n\n" + _listing(changes))
                changes, committed = {}, list(changes)
            else:
                committed = []
            for title in sorted({explained[r] for r in changes if r in explained}):
                group = {r: d for r, d in changes.items() if explained.get(r) == title}
                self.committer.commit(group, f"{title}\n\n" + _listing(group))
                committed.extend(group)
            left = {r: d for r, d in changes.items() if r not in explained}
            if left and reason is not None:
                self.committer.commit(left, f"{reason}\n\n" + _listing(left))
            elif left:
                self.committer.commit(left, (
                    f"gitpersist: commit {len(left)} store files found changed at open\n\n"
                    "They differed from HEAD: a process stopped between writing and\n"
                    "committing, a file was edited by hand, or git was just enabled.\n\n"
                    + _listing(left)))
                committed.extend(left)
        self.index.want(candidates)
        try:
            self.index.update()
        except HistoryError as exc:     # e.g. the user's git holds index.lock
            LOG.warning("%s: index not updated yet, retrying in the background: %s",
                        self.root, exc)
        return committed

    def recover_quietly(self, explained: Mapping[str, str] | None = None) -> list[str]:
        """`recover`, where a failure must not fail the caller: at open, and
        at the first write of a process whose open could not recover (the
        write lock held by another writer, a full disk).  A failure is
        logged and leaves the recovery due (`recovery_due`) for the next
        write (`commit_pending`).  Called with the store lock held."""
        try:
            found = self.recover(explained)
        except (HistoryError, OSError) as exc:
            self.recovery_due = True
            LOG.warning("%s: files changed since the last commit are left for the next "
                        "write to commit: %s", self.root, exc)
            return []
        self.recovery_due = False
        return found

    def flush(self) -> None:
        """Return once every change recorded so far is committed and the
        index is up to date."""
        if self._closed:
            return
        with self._lock():
            self.group.drain()
            self.commit_queued()
            for _ in range(3):      # again if HEAD moved under the update
                self.index.update()
                if not self.index.pending:
                    break

    # -- reading ------------------------------------------------------------

    def versions(self, relpath: str, limit: int | None = None) -> list[Version]:
        """The commits that changed `relpath`, newest first (`log.Log`)."""
        return self.log.versions(relpath, limit)

    def read(self, relpath: str, rev: str) -> bytes | None:
        """The content of `relpath` at revision `rev`; None if absent there."""
        return self.log.read(relpath, rev)

    def diff(self, relpath: str, rev1: str, rev2: str | None = None) -> str:
        """Unified diff of `relpath` from `rev1` to `rev2` (None: the file as
        it is now); empty when they are equal."""
        return self.log.diff(relpath, rev1, rev2)

    # -- life cycle ---------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, update the index, stop the thread and the
        gc child, and release the repository's processes."""
        if not self.worker.stop():
            return
        atexit.unregister(self._atexit)
        try:
            if self.queue or self.group or self.index.pending:
                with self._lock():
                    self.group.drain()
                    self.commit_queued()
                    self.index.update()
        except (GitpersistError, OSError) as exc:
            LOG.warning("%s: closing with changes not committed (%s); the store's next "
                        "open commits them", self.root, exc)
        finally:
            # The thread ends at once, unless it waits for the store lock that
            # our caller holds; then it ends when that is released, finding
            # nothing left to do.
            self.worker.join(self.child_wait)
            self.housekeeping.stop()
            with self._git_lock:
                self._closed = True
                self.repository.close()
                self.objects.clear()

    def __repr__(self) -> str:
        return f"<gitpersist.History {self.root} in {self.worktree}>"

    # -- committing ---------------------------------------------------------

    def _committed(self, relpaths: Iterable[str]) -> None:
        """A commit moved the branch (`Committer`, `_git_lock` held): the
        index update and the housekeeping fall due."""
        with self._cond:
            self.index.committed(relpaths)
            self.housekeeping.committed()
            self._cond.notify_all()

    def commit_queued(self) -> None:
        """Commit the queued (asynchronous) changes now, as the files now
        are, in one commit.  Called with the store lock held."""
        items = self.queue.snapshot()
        if not items:
            return
        relpaths = [relpath for paths, _ in items for relpath in paths]
        changes = self.written.changes(relpaths, self._read_file)   # as the files now are
        with self._git_lock:
            self.committer.commit(changes, self.queue.message(items))
        self.queue.done(len(items))
        self.written.forget(relpaths)

    def _commit_group(self, items: list[Added]) -> None:
        """Commit the sync-mode changes `items` (`group`) in one commit, the
        store lock held (`group.as_committed` says with what content).  A
        failure queues them for the background retry and raises
        `HistoryError`."""
        changes = as_committed(self.root, items, self._read_file)
        message = self.queue.message([([item.change.relpath], item.message) for item in items])
        try:
            with self._git_lock:
                self.committer.commit(changes, message)
        except (OSError, HistoryError) as exc:
            relpaths = sorted({item.change.relpath for item in items})
            raise self._retry_later(relpaths, message, exc) from None

    def _retry_later(self, relpaths: list[str], message: str, exc: Exception, *,
                     queued: bool = False) -> HistoryError:
        """Queue a commit that failed for the background thread to retry
        (unless it is `queued` already); the error to raise."""
        if not queued:
            self.queue.put(relpaths, message)
        return HistoryError(f"commit of {', '.join(relpaths)} in {self.git_dir} failed "
                            f"({exc}); the files are written, the commit will be retried")

    # -- helpers ------------------------------------------------------------

    def _settle(self) -> None:
        """Commit what this process has queued, so history queries see it."""
        if self._closed:
            raise HistoryError(f"history of {self.root} is closed")
        if self.queue or self.group:
            with self._lock():
                self.group.drain()
                self.commit_queued()

    def _check_open(self) -> None:
        if self._closed or self.worker.closing:
            raise HistoryError(f"history of {self.root} is closed")

    def _read_file(self, relpath: str) -> bytes | None | Literal[False]:
        return read_store_file(self.root, relpath)


def read_store_file(root: str, relpath: str) -> bytes | None | Literal[False]:
    """The store file's content, None if absent, False if unreadable (a
    folder or symlink in its place: left out of commits)."""
    path = os.path.join(root, *relpath.split("/"))
    try:
        found = files.read_below(root, relpath)    # a symlinked folder is not ours
    except OSError as exc:
        LOG.warning("%s: not committed: %s", path, exc.strerror or exc)
        return False
    return None if found is None else found[0]


def _close_at_exit(ref: weakref.ref[History]) -> None:
    history = ref()
    if history is not None:
        history.close()


def _listing(changes: Mapping[str, object]) -> str:
    """The body of a commit of several files: one ``- relpath`` line each."""
    return "".join(f"- {relpath}\n" for relpath in changes)
