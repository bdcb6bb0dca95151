"""The store's write lock: one writer at a time, across threads and processes.

`WriteLock.exclusive()` is the one way to write to a store.  It takes, in
this order, a thread mutex (writers of this process) and the lock file
``.gitpersist/write.lock`` (``flock``: writers of other processes; the
kernel releases it when a process dies).  It is
re-entrant: a write inside a `Store.batch` reuses the batch's locks.
Readers never take it.

The store's lock order, the one place it is written down (each component's
docstring names only its own lock):

    WriteLock mutex -> WriteLock's holder token -> write.lock (flock)
        -> History's repo lock -> History's condition

    The cache's lock (`gitpersist.cache`) is a leaf: taken for in-memory
    work only, never while waiting for another lock or doing file or git
    I/O of a write, so a reader in this process never waits for a writer.
    Below it, the inotify watcher's lock (`gitpersist.inotify`): a read
    drains the watcher's descriptor under the cache's lock; a write
    watching a new type folder takes it alone.  Under that lock only the
    cache's queue of changed paths is taken (a leaf of its own).
    A sync enters at its own mutex and ``sync.lock`` and then takes the
    write lock for its integration (`gitpersist.sync`).

Guarantees (tests: ``tests/test_locking.py``, ``tests/test_processes.py``):

* While a block holds `exclusive`, no other thread or process holds it,
  also across eventlet's patching: a thread of before the patching inside
  it keeps green writers out until it leaves (``_enter``; test:
  ``tests/test_eventlet.py``, the real thread inside at the patching).
* The store folder is checked before and after the lock is taken: a folder
  removed, moved or replaced since the store opened (or a meta folder
  replaced by a symlink, which filelock would follow) refuses the write with
  `StoreError` instead of writing into the wrong place.
* A lock not obtained within `timeout` seconds raises `LockTimeout` naming
  the lock file and the option; a lock that cannot be taken at all (a
  read-only file system) raises `StoreError` naming it.
"""

from __future__ import annotations

import _thread
import errno
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from .errors import LockTimeout, StoreError
from .green import green_threads
from .layout import LOCK_FILE, META_DIR

LockT = TypeVar("LockT")


def _identity(path: str, *, follow: bool) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


_LOCKS: weakref.WeakSet[WriteLock] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._after_fork()      # noqa: SLF001  (this module's own class)


os.register_at_fork(after_in_child=_after_fork_in_child)


class FileLock:
    """An exclusive ``flock`` on a lock file, kept open between acquires.

    Written here rather than taken from filelock, for two measured reasons:
    filelock opens and closes the lock file on every acquire (24% of a
    durable write's time in the benchmark), and it guards itself with a
    thread lock made when it is created, which breaks once eventlet patches
    threading after the store opened ("RuntimeError: cannot notify on
    un-acquired lock", issue 12).  Here a waiting acquire polls with
    `time.sleep` (green under eventlet).  Not thread-safe: `WriteLock`'s
    mutex serialises it.  A forked child closes the descriptor it
    inherited and opens its own (a flock belongs to the open file, which a
    child shares: `WriteLock` arranges it with ``os.register_at_fork``); a lock file removed or
    replaced while we waited is opened again and locked anew, so two
    processes never hold locks on two different files."""

    def __init__(self, path: str, *, mode: int) -> None:
        self.path = path
        self.mode = mode
        self._fd = -1
        self._file_id: tuple[int, int] | None = None

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(errno.ETIMEDOUT, "lock held", self.path) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
                continue
            if _identity(self.path, follow=False) == self._file_id:
                return
            self.close()        # removed or replaced meanwhile: lock the file there now

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = -1

    def forget_after_fork(self) -> None:
        """In a forked child: close the descriptor inherited from the parent
        (a flock belongs to the open file: kept, it would keep the parent's
        lock alive after the parent dies, or let the child in beside it)."""
        self.close()

    def _open(self) -> int:
        if self._fd < 0:
            # read-only: flock needs no more, and a file kept open for
            # writing would stop its file system from being remounted ro
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                               self.mode)
            stat = os.fstat(self._fd)
            self._file_id = (stat.st_dev, stat.st_ino)
        return self._fd


class Mutex(Generic[LockT]):
    """A thread lock that is made again, when no one holds it, once eventlet
    has patched threading since it was made: a lock made before the patching
    would let every greenlet of a thread in (they share its identity), or
    block them all.  `factory` makes it, now and at each renewal, and must
    look the lock type up when called (`thread_lock`, `thread_rlock`:
    ``threading.Lock`` itself is the unpatched one).  The one home of that
    rule: the store's write lock and the sync's mutex
    (`gitpersist.sync.syncer`) use it."""

    def __init__(self, factory: Callable[[], LockT]) -> None:
        self._factory = factory
        self._green = green_threads()
        self.lock = factory()

    def current(self, *, idle: bool) -> LockT:
        """The lock to take now.  `idle`: the caller knows that no one
        holds it; only then can it be replaced."""
        if self._green != green_threads() and idle:
            self._green, self.lock = True, self._factory()
        return self.lock


def thread_lock() -> _thread.LockType:
    """A `threading.Lock`, eventlet's once it has patched threading."""
    return threading.Lock()


def thread_rlock() -> _thread.RLock:
    """A `threading.RLock`, eventlet's once it has patched threading."""
    return threading.RLock()


class WriteLock:
    """The write lock of the store at `root` (an existing store folder)."""

    def __init__(self, root: str, *, timeout: float, file_mode: int) -> None:
        self.root = root
        self.timeout = timeout
        self._meta = os.path.join(root, META_DIR)
        self._root_id = _identity(root, follow=True)
        self._meta_id = _identity(self._meta, follow=False)
        self._mutex = Mutex(thread_rlock)
        self._inside = _thread.allocate_lock()      # see _enter
        self._depth = 0             # how deep the mutex's owner is in exclusive()
        self._owner: int | None = None      # that owner's threading.get_ident()
        self._closed = False
        self._file_lock = FileLock(os.path.join(root, LOCK_FILE), mode=file_mode)
        _LOCKS.add(self)

    def _after_fork(self) -> None:
        """In a forked child: nothing of the parent's holding carries over
        (its thread mutex and depth, its lock file descriptor)."""
        self._mutex = Mutex(thread_rlock)
        self._inside = _thread.allocate_lock()
        self._depth, self._owner = 0, None
        self._file_lock.forget_after_fork()

    @property
    def outermost(self) -> bool:
        """True inside `exclusive` held once (not nested) by this thread:
        the write releases the lock as soon as its block ends."""
        return self._depth == 1 and self._owner == threading.get_ident()

    @property
    def lock_file(self) -> str:
        return self._file_lock.path

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Exclude every other writer for the block (see the module doc)."""
        me = threading.get_ident()      # a greenlet's own, once eventlet patched
        if self._depth and self._owner == me:      # held by this thread already
            self.check_root()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        deadline = time.monotonic() + self.timeout
        # Made again at the first write after eventlet patched: greenlets all
        # share the identity a lock made before knows, so it let them all in.
        mutex = self._mutex.current(idle=True)
        if not mutex.acquire(timeout=self.timeout):
            raise LockTimeout(f"could not lock {self.lock_file} within {self.timeout:g} s "
                              "(lock_timeout): another thread of this process holds it")
        try:
            if self._closed:
                raise StoreError(f"store {self.root} is closed")
            self._enter(deadline)
            try:
                self._lock_file(deadline)
                try:
                    self.check_root()       # again: it may have gone while we waited
                    self._depth, self._owner = 1, me
                    yield
                finally:
                    self._depth, self._owner = 0, None
                    self._file_lock.release()
            finally:
                self._inside.release()
        finally:
            mutex.release()

    def _enter(self, deadline: float) -> None:
        """Take `_inside`, the holder's token, once the mutex is ours.  Only
        one generation of the mutex ever wants it, except across eventlet's
        patching: a real thread that took the mutex of before (or waited
        for it) and a green writer that took the one made since would both
        be inside, sharing one lock file descriptor (flock lets its holder
        in again).  The token is a plain lock, which eventlet never swaps,
        taken without blocking (a green thread must not block on a real
        lock): the later of the two polls, with `time.sleep` (green under
        eventlet), until the other leaves.  Uncontended: one try."""
        delay = 0.0005
        while not self._inside.acquire(False):
            if time.monotonic() >= deadline:
                raise LockTimeout(f"could not lock {self.lock_file} within {self.timeout:g} s "
                                  "(lock_timeout): a thread started before eventlet's "
                                  "patching holds it")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _lock_file(self, deadline: float) -> None:
        self.check_root()           # first: taking the lock recreates its file
        try:
            self._file_lock.acquire(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise LockTimeout(f"could not lock {self.lock_file} within "
                              f"{self.timeout:g} s (lock_timeout)") from None
        except FileNotFoundError:
            raise StoreError(f"store folder {self.root} is missing") from None
        except OSError as exc:      # a read-only file system, no permission...
            raise StoreError(f"cannot lock {self.lock_file}: "
                             f"{exc.strerror or exc}") from None

    def check_root(self) -> None:
        """Refuse to write once the store folder was removed, moved or
        replaced: the cache and the watcher know the folder that was opened."""
        if _identity(self.root, follow=True) != self._root_id:
            raise StoreError(f"store folder {self.root} is missing: removed, moved or "
                             "replaced since the store was opened")
        # the lock file lives there, and a symlinked folder would move it
        if _identity(self._meta, follow=False) != self._meta_id:
            raise StoreError(f"{self._meta} was removed or replaced (by a symlink?) since "
                             "the store was opened")

    def close(self) -> None:
        """Refuse writes from now on (a write under way finishes first)."""
        with self._mutex.lock:
            self._closed = True
            self._file_lock.close()
