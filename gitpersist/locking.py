"""The store's write lock: one writer at a time, across threads and processes.

`WriteLock.exclusive()` is the one way to write to a store.  It takes, in
this order, a thread mutex (writers of this process) and the lock file
``.gitpersist/write.lock`` (filelock: writers of other processes).  It is
re-entrant: a write inside a `Store.batch` reuses the batch's locks.
Readers never take it.

The store's lock order, the one place it is written down (each component's
docstring names only its own lock):

    WriteLock mutex -> write.lock (filelock) -> History's repo lock
        -> History's condition

    The cache's lock (`gitpersist.cache`) is a leaf: taken for in-memory
    work only, never while waiting for another lock or doing file or git
    I/O of a write, so a reader in this process never waits for a writer.
    A sync enters at its own mutex and ``sync.lock`` and then takes the
    write lock for its integration (`gitpersist.sync`).

Guarantees (tests: ``tests/test_locking.py``, ``tests/test_processes.py``):

* While a block holds `exclusive`, no other thread or process holds it.
* The store folder is checked before and after the lock is taken: a folder
  removed, moved or replaced since the store opened (or a meta folder
  replaced by a symlink, which filelock would follow) refuses the write with
  `StoreError` instead of writing into the wrong place.
* A lock not obtained within `timeout` seconds raises `LockTimeout` naming
  the lock file and the option; a lock that cannot be taken at all (a
  read-only file system) raises `StoreError` naming it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import filelock

from .errors import LockTimeout, StoreError
from .layout import LOCK_FILE, META_DIR


def _identity(path: str, *, follow: bool) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class WriteLock:
    """The write lock of the store at `root` (an existing store folder)."""

    def __init__(self, root: str, *, timeout: float, file_mode: int) -> None:
        self.root = root
        self._meta = os.path.join(root, META_DIR)
        self._root_id = _identity(root, follow=True)
        self._meta_id = _identity(self._meta, follow=False)
        self._mutex = threading.RLock()
        self._depth = 0             # how deep the mutex's owner is in exclusive()
        self._closed = False
        self._file_lock = filelock.FileLock(os.path.join(root, LOCK_FILE), timeout=timeout,
                                            mode=file_mode, thread_local=False)

    @property
    def lock_file(self) -> str:
        return str(self._file_lock.lock_file)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Exclude every other writer for the block (see the module doc)."""
        with self._mutex:
            if self._depth:     # held by this thread already
                self.check_root()
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self._closed:
                raise StoreError(f"store {self.root} is closed")
            self.check_root()           # first: taking the lock recreates its folder
            try:
                self._file_lock.acquire()
            except filelock.Timeout:
                raise LockTimeout(
                    f"could not lock {self.lock_file} within "
                    f"{self._file_lock.timeout} s (lock_timeout)") from None
            except FileNotFoundError:
                raise StoreError(f"store folder {self.root} is missing") from None
            except OSError as exc:      # a read-only file system, no permission...
                raise StoreError(f"cannot lock {self.lock_file}: "
                                 f"{exc.strerror or exc}") from None
            try:
                self.check_root()       # again: it may have gone while we waited
                self._depth = 1
                yield
            finally:
                self._depth = 0
                self._file_lock.release()

    def check_root(self) -> None:
        """Refuse to write once the store folder was removed, moved or
        replaced: the cache and the watcher know the folder that was opened."""
        if _identity(self.root, follow=True) != self._root_id:
            raise StoreError(f"store folder {self.root} is missing: removed, moved or "
                             "replaced since the store was opened")
        # the lock file lives there, and filelock follows symlinked folders
        if _identity(self._meta, follow=False) != self._meta_id:
            raise StoreError(f"{self._meta} was removed or replaced (by a symlink?) since "
                             "the store was opened")

    def close(self) -> None:
        """Refuse writes from now on (a write under way finishes)."""
        with self._mutex:
            self._closed = True
