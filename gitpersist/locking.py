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
* A store opened ``read_only`` never takes it: `exclusive` refuses with
  `ReadOnlyStore` (a `StoreError`) naming the store, before touching any
  file (``tests/test_read_only.py``).
* The store folder is checked before and after the lock is taken: a folder
  removed, moved or replaced since the store opened (or a meta folder
  replaced by a symlink, which filelock would follow) refuses the write with
  `StoreError` instead of writing into the wrong place.
* A lock not obtained within `timeout` seconds raises `LockTimeout` naming
  the lock file and the option, and its holder where it can be known (pid,
  host, since when: `holder_of`); a lock that cannot be taken at all (a
  read-only file system) raises `StoreError` naming it.
  (``tests/test_lock_holder.py``.)

Who holds the lock is written to a sibling file, ``.gitpersist/write.holder``
(`record_holder`), by each process as it takes the lock, not into the lock
file: that is kept open read-only (see `FileLock`), and filelock, which fsck
uses, truncates a lock file it opens, even one another process holds.  The
holder file is not removed at release (that would cost every write another
file operation): `holder_of` checks it against the kernel's list of flocks
where there is one.  Writing it costs one open, pwrite and close per
outermost lock, no fsync (2-6 us measured).
"""

from __future__ import annotations

import _thread
import datetime
import errno
import fcntl
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Generic, TypeVar

from . import files
from .errors import LockTimeout, ReadOnlyStore, StoreError
from .green import green_threads
from .layout import HOLDER_FILE, LOCK_FILE, META_DIR

LOG = logging.getLogger(__name__)
LockT = TypeVar("LockT")


def _identity(path: str, *, follow: bool) -> tuple[int, int] | None:
    try:
        stat = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


_LOCKS: weakref.WeakSet[WriteLock] = weakref.WeakSet()
_HOLDER_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
# A fixed-width line written over the last one, not truncated first:
# O_TRUNC made it 83 us on ext4 here (a fifth of a put without fsync), a
# pwrite of the same length 2 us.
_HOLDER_WIDTH = 127


def holder_path(lock_file: str) -> str:
    """The holder file beside the lock file `lock_file`."""
    return os.path.join(os.path.dirname(lock_file), os.path.basename(HOLDER_FILE))


def record_holder(lock_file: str, mode: int) -> None:
    """Say in the holder file that this process holds `lock_file` since now
    (best effort: a full disk or a read-only file must not fail the write
    the lock is for)."""
    line = (f"{os.getpid()} {files.HOST} {time.time():.3f} "
            f"{socket.gethostname()[:64]}").encode("ascii", "replace")
    try:
        fd = os.open(holder_path(lock_file), _HOLDER_FLAGS, mode)
        try:
            os.pwrite(fd, line.ljust(_HOLDER_WIDTH) + b"\n", 0)
        finally:
            os.close(fd)
    except OSError:
        pass


def holder_of(lock_file: str) -> str | None:
    """Who holds `lock_file`, as far as it can be known ("pid 123 on host db1
    since 2026-12-01 23:50:01 UTC"), or None.  Call it only when the lock
    is known to be held.  On this host the kernel's list of flocks
    (``/proc/locks``) says which pid holds it: the holder file is believed
    when it names that pid, and otherwise only the pid is told (the holder
    did not record itself: another tool, an older gitpersist, a holder
    about to).  A holder on another host (a shared folder) is only known
    by its holder file."""
    record = _read_holder(lock_file)
    pids = _flock_pids(lock_file)
    if pids is None:            # no /proc/locks: believe a holder still alive
        if record and (record[1] != files.HOST or files.process_alive(int(record[0]))):
            return _describe(record)
        return None
    if record and record[1] == files.HOST and int(record[0]) in pids:
        return _describe(record)
    if pids:
        return (f"pid {min(pids)} on host {socket.gethostname()} (since when is unknown: "
                "it did not record itself)")
    return _describe(record) if record and record[1] != files.HOST else None


def _read_holder(lock_file: str) -> tuple[str, str, str, str] | None:
    """(pid, HOST, since, host name) of the holder file, None if unreadable."""
    try:
        with open(holder_path(lock_file), "rb") as file:
            words = file.read(400).decode("utf-8", "replace").split()
    except OSError:
        return None
    if len(words) != 4 or not words[0].isdigit():
        return None
    try:
        float(words[2])
    except ValueError:
        return None
    return words[0], words[1], words[2], words[3]


def _describe(record: tuple[str, str, str, str]) -> str | None:
    pid, _, since, name = record
    try:
        when = datetime.datetime.fromtimestamp(float(since), datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return f"pid {pid} on host {name} since {when:%Y-%m-%d %H:%M:%S} UTC"


def _flock_pids(lock_file: str) -> set[int] | None:
    """The pids this kernel lists as holding a flock on `lock_file`, None
    where ``/proc/locks`` cannot be read."""
    try:
        stat = os.stat(lock_file)
        with open("/proc/locks", "rb") as file:
            lines = file.read().decode("ascii", "replace").splitlines()
    except OSError:
        return None
    where = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    pids = set()
    for line in lines:
        parts = line.split()        # "1: FLOCK  ADVISORY  WRITE 123 fe:00:456 0 EOF"
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == where \
                and parts[4].isdigit():
            pids.add(int(parts[4]))
    return pids


def held_by(lock_file: str) -> str:
    """": held by <holder_of>" for an error message, or "" if unknown."""
    holder = holder_of(lock_file)
    return f": held by {holder}" if holder else ""


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
    """The write lock of the store at `root` (an existing store folder);
    with `read_only`, one that refuses every write."""

    def __init__(self, root: str, *, timeout: float, file_mode: int,
                 read_only: bool = False) -> None:
        self.root = root
        self.timeout = timeout
        self.read_only = read_only
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
    def exclusive(self, timeout: float | None = None) -> Iterator[None]:
        """Exclude every other writer for the block (see the module doc),
        waiting up to `timeout` seconds (None: the store's `timeout`)."""
        if self.read_only:
            raise ReadOnlyStore(f"store {self.root} is open read-only (read_only=True, or "
                                "its folder is not writable): writes are refused")
        me = threading.get_ident()      # a greenlet's own, once eventlet patched
        if self._depth and self._owner == me:      # held by this thread already
            self.check_root()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        # Made again at the first write after eventlet patched: greenlets all
        # share the identity a lock made before knows, so it let them all in.
        mutex = self._mutex.current(idle=True)
        if not mutex.acquire(timeout=timeout):
            raise LockTimeout(f"could not lock {self.lock_file} within {timeout:g} s "
                              "(lock_timeout): another thread of this process holds it")
        try:
            if self._closed:
                raise StoreError(f"store {self.root} is closed")
            self._enter(deadline, timeout)
            try:
                self._lock_file(deadline, timeout)
                try:
                    self.check_root()       # again: it may have gone while we waited
                    record_holder(self.lock_file, self._file_lock.mode)
                    self._depth, self._owner = 1, me
                    yield
                finally:
                    self._depth, self._owner = 0, None
                    self._file_lock.release()
            finally:
                self._inside.release()
        finally:
            mutex.release()

    def _enter(self, deadline: float, timeout: float) -> None:
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
                raise LockTimeout(f"could not lock {self.lock_file} within {timeout:g} s "
                                  "(lock_timeout): a thread started before eventlet's "
                                  "patching holds it")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _lock_file(self, deadline: float, timeout: float) -> None:
        self.check_root()           # first: taking the lock recreates its file
        try:
            self._file_lock.acquire(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise LockTimeout(f"could not lock {self.lock_file} within "
                              f"{timeout:g} s (lock_timeout)"
                              f"{held_by(self.lock_file)}") from None
        except FileNotFoundError:
            raise StoreError(f"store folder {self.root} is missing") from None
        except OSError as exc:      # a read-only file system, no permission...
            raise StoreError(f"cannot lock {self.lock_file}: "
                             f"{exc.strerror or exc}") from None

    @contextmanager
    def if_free(self) -> Iterator[bool]:
        """`exclusive` if the lock can be had at once: yields True holding
        it, else False (held by another writer, or a lock file that cannot
        be made: a read-only store, a full disk), without waiting."""
        with ExitStack() as held:
            try:
                held.enter_context(self.exclusive(timeout=0.0))
            except StoreError as exc:       # LockTimeout or ReadOnlyStore among them
                LOG.info("%s: not locked: %s", self.root, exc)
                yield False
                return
            yield True

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
