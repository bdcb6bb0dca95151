"""Watch a store's folders with inotify, read by the caller: no thread.

`Inotify` holds one non-blocking inotify descriptor per store.  Nothing
reads it in the background: `drain` reads whatever the kernel queued, and
the cache calls it first thing in every read and every write's settle
(`gitpersist.cache`, its `poll` hook).  The kernel queues an event when the
rename, unlink or close happens, so a drain at the start of a read sees
every change made before the read began: no delivery delay as with a
watcher thread.

Why not watchdog's inotify observer (used where this module cannot run:
not Linux, or ``watch="polling"``; see `gitpersist.watcher`): its emitter
and dispatcher threads take ~4 events per write and contend with the
writer.  Measured with benchmarks/writes.py (issue 17): about 38 futex
calls and 46 more syscalls per ``put`` with the observer running against
~0 with ``watch="off"``, ~27% of a durable put in paired timing, and a
durable set at 1.44x the bare write+fsync+rename floor.  Reading the
descriptor in the caller costs one ``read`` per drain (EAGAIN when
nothing happened).  Measured after (strace -f -c, 200 fsync'd puts):
63 syscalls and no futex call per put, against 56 with ``watch="off"``
and 128 (54 futex) with watchdog's observer; durable set 2.0x the floor
against 2.8-4.9x, run back to back (load average 3.5-4.6 on 2 cores).
It also needs no thread under eventlet.

What is watched: the store root without recursion (type folders coming
and going) and every folder below each type folder, so git's ``.git``
and ``.gitpersist`` are never watched.  Events: created, deleted, moved
from/to and closed-after-write (an editor rewriting a file in place);
reads cause none.  A folder that appears is watched, then reported as
changed (what it held before its watch existed was not seen).

Health (`Health`): a refused watch (``fs.inotify.max_user_watches``) or
descriptor (``max_user_instances``), a failed read, or a fork (a child
reading the parent's descriptor would take the parent's events) makes it
unhealthy for good, logged once naming the cause; the store's reads then
check their files (``Cache.unwatched``).  Never a raw ``OSError``.  A
queue overflow (``IN_Q_OVERFLOW``: events lost) calls `on_lost`, and the
cache forgets everything and reloads lazily.

Subscribers (``Store.subscribe``) are told what the cache learns when it
applies changes, at reads and writes; that was so with watchdog's thread
too (it only queued paths), so no thread is needed for them.

Tests: ``tests/test_watch.py`` (events, overflow, refused watches),
``tests/test_coherence.py``, ``tests/test_processes.py``,
``tests/test_eventlet.py``.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import logging
import os
import posix
import struct
import sys
import termios
import threading
import weakref
from collections.abc import Callable

LOG = logging.getLogger(__name__)

# inotify's constants (linux/inotify.h), for the events this module asks for
IN_CLOSE_WRITE, IN_MOVED_FROM, IN_MOVED_TO = 0x8, 0x40, 0x80
IN_CREATE, IN_DELETE = 0x100, 0x200
IN_Q_OVERFLOW, IN_IGNORED, IN_ONLYDIR, IN_DONT_FOLLOW, IN_ISDIR = (
    0x4000, 0x8000, 0x1000000, 0x2000000, 0x40000000)
_ROOT = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_DONT_FOLLOW
_FOLDER = _ROOT | IN_CLOSE_WRITE
_GONE = IN_DELETE | IN_MOVED_FROM
if sys.platform.startswith("linux"):     # watchdog's libc binding loads only there
    from watchdog.observers.inotify_c import (WatchDescriptor, inotify_add_watch,
                                              inotify_init, inotify_rm_watch)
_HEADER = struct.Struct("iIII")         # wd, mask, cookie, len (struct inotify_event)
_READ_SIZE = 64 * 1024
_LIVE: weakref.WeakSet[Inotify] = weakref.WeakSet()


def _forked() -> None:
    for watcher in list(_LIVE):
        watcher.forked = True


os.register_at_fork(after_in_child=_forked)


def init() -> int:
    """A new inotify descriptor (`OSError` with the errno when refused)."""
    fd = inotify_init()
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return fd


def add_watch(fd: int, path: str, mask: int) -> int:
    """Watch `path` on `fd`; the watch descriptor (`OSError` when refused)."""
    wd = inotify_add_watch(fd, os.fsencode(path), mask)
    if wd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return wd


class Inotify:
    """Calls ``on_change(relpath, is_dir)`` for every changed path below
    `root` and ``on_lost()`` when events were lost, from `drain`."""

    def __init__(self, root: str, on_change: Callable[[str, bool], None],
                 on_lost: Callable[[], None]) -> None:
        self._root = root
        self._on_change = on_change
        self.on_lost = on_lost
        self.health = Health(root)
        self._folders: dict[int, str] = {}    # wd -> folder below the root ("" for it)
        self._wds: dict[str, int] = {}
        self._lock = threading.Lock()         # the descriptor and the maps
        self._fd = -1
        self.forked = False     # set in a forked child (os.register_at_fork)
        self._pending = array.array("i", [0])
        try:
            self._fd = init()
        except OSError as exc:
            self.health.fail(why(exc, root))
            return
        os.set_blocking(self._fd, False)
        os.set_inheritable(self._fd, False)
        _LIVE.add(self)
        with self._lock:
            if not self._add("", _ROOT):
                return
        for entry in os.scandir(root):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                self.watch_type(entry.name)

    @property
    def healthy(self) -> bool:
        """True while every change below the root is reported."""
        return self.health.problem is None

    def watch_type(self, name: str, *, resync: bool = True) -> None:
        """Watch the type folder `name` and every folder below it.  With
        `resync`, report it as changed (the store passes False for a folder
        it has just created itself under the write lock)."""
        if name in self._wds or self._fd < 0:      # the common case, unlocked
            return
        with self._lock:
            added = self._watch_tree(name)
        if added and resync:
            self._on_change(name, True)

    def _watch_tree(self, relfolder: str) -> bool:
        """Watch `relfolder` and the folders below it; False if it was
        watched already or is gone."""
        if relfolder in self._wds or not self._add(relfolder, _FOLDER):
            return False
        try:
            entries = list(os.scandir(self._path(relfolder)))
        except OSError:
            return True
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                self._watch_tree(f"{relfolder}/{entry.name}")
        return True

    def _add(self, relfolder: str, mask: int) -> bool:
        if self.health.problem is not None and relfolder:
            return False        # unhealthy for good: reads check their files
        path = self._path(relfolder)
        try:
            wd = add_watch(self._fd, path, mask)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):      # else: gone again
                self.health.fail(why(exc, path))
            return False
        self._folders[wd] = relfolder
        self._wds[relfolder] = wd
        return True

    def _path(self, relfolder: str) -> str:
        return os.path.join(self._root, *relfolder.split("/")) if relfolder else self._root

    def drain(self) -> None:
        """Report what the kernel queued since the last drain."""
        if self._fd < 0:
            return
        if self.forked:             # a forked child: the events are the parent's
            self.health.fail("the process forked, and the inotify descriptor is "
                             "its parent's")
            fd, self._fd = self._fd, -1
            os.close(fd)            # this process's copy only
            return
        with self._lock:
            while True:
                try:
                    # FIONREAD first: 0.44 us against 1.7 us for a read
                    # that fails with EAGAIN (every read of a quiet store)
                    fcntl.ioctl(self._fd, termios.FIONREAD, self._pending)
                    if not self._pending[0]:
                        return
                    # posix.read, not os.read: eventlet's patched os.read
                    # waits for the descriptor to become readable instead
                    # of raising EAGAIN (a read then hangs for good)
                    data = posix.read(self._fd, _READ_SIZE)
                except BlockingIOError:
                    return
                except OSError as exc:
                    self.health.fail(f"reading its events failed: {exc}")
                    return
                self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            wd, mask, _, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            name = os.fsdecode(data[offset:offset + length].rstrip(b"\0"))
            offset += length
            if mask & IN_Q_OVERFLOW:
                LOG.warning("%s: inotify queue overflowed; reloading the cache", self._root)
                self.on_lost()
                continue
            if mask & IN_IGNORED:        # its folder is gone: the kernel dropped it
                relfolder = self._folders.pop(wd, None)
                if relfolder is not None and self._wds.get(relfolder) == wd:
                    del self._wds[relfolder]
                continue
            folder = self._folders.get(wd)
            if folder is None or not name:
                continue
            if not folder and name.startswith("."):
                continue                    # .git, .gitpersist: not records
            relpath = f"{folder}/{name}" if folder else name
            is_dir = bool(mask & IN_ISDIR)
            if is_dir:
                self._folder_event(relpath, mask)
            self._on_change(relpath, is_dir)

    def _folder_event(self, relpath: str, mask: int) -> None:
        if mask & _GONE:        # gone or moved away: forget the watches below it
            prefix = relpath + "/"
            for relfolder in [f for f in self._wds if f == relpath or f.startswith(prefix)]:
                wd = self._wds.pop(relfolder)
                self._folders.pop(wd, None)
                if mask & IN_MOVED_FROM:
                    inotify_rm_watch(self._fd, WatchDescriptor(wd))
        else:                   # created or moved here: watch it, the change reports it
            self._watch_tree(relpath)

    def close(self) -> None:
        """Release the descriptor (and with it every watch)."""
        with self._lock:
            fd, self._fd = self._fd, -1
            self._folders.clear()
            self._wds.clear()
        if fd >= 0:
            os.close(fd)


class Health:
    """Why a watcher misses changes (`problem`; None while it does not),
    logged once, naming the cause."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.problem: str | None = None

    def fail(self, problem: str) -> None:
        if self.problem is None:
            self.problem = problem
            LOG.warning("%s: not watching for changes made by other means (%s); reads "
                        "check their files instead", self.root, problem)


def why(exc: OSError, path: str) -> str:
    """What a refused watch means, naming the limit."""
    if exc.errno == errno.ENOSPC:
        limit = " (the inotify watch limit, fs.inotify.max_user_watches)"
    elif exc.errno == errno.EMFILE:
        limit = " (the inotify instance limit, fs.inotify.max_user_instances)"
    else:
        limit = ""
    return f"cannot watch {path}: {exc.strerror or exc}{limit}"
