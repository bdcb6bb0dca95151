"""Tell a store which of its files changed behind its back.

`open_watcher` picks how: ``watch="native"`` on Linux is inotify read by
the caller, no thread (`gitpersist.inotify`, which says why it goes around
watchdog there, with the figures); ``watch="polling"``, and ``"native"``
where the kernel has no inotify, are watchdog's observers (`Watcher`,
below).  Both offer `Watching`.

`Watcher`: one observer thread per store.  The store root is watched without recursion
(type folders coming and going) and each type folder recursively, so git's
own busy ``.git`` folder and ``.gitpersist`` are never watched.

Facts of watchdog 7.1 this module is built around:

* An atomic replace arrives as a *moved* event onto the target and no
  *modified* event for it, so moves are reported for both ends.
* With the default event mask and a few thousand folders, the inotify queue
  overflows over and over and nothing is delivered; the mask is therefore
  limited to created, deleted, moved and closed-after-write events (the last
  one catches editors that rewrite a file in place).  Reads by this or any
  process cause no events at all.
* watchdog only *logs* an inotify queue overflow (events were lost).  A log
  handler turns that message into `on_lost`, which makes the store forget
  its whole cache.

The watcher is an accelerator: the store's change log
(`gitpersist.changelog`) makes every write through a store visible to every
reader without it.  What the watcher adds is changes made by other means
(hand edits, ``git pull``).  Its health is known (`problem`, `healthy`): a
watch the kernel refuses (the inotify limits ``fs.inotify.max_user_watches``
and ``max_user_instances``), a thread that died, or eventlet's patching
(watchdog's threads cannot run green) make it unhealthy, logged once with
the cause, and the store then checks files at read time instead
(`gitpersist.cache`): never silent staleness, never a raw ``OSError``.
eventlet patching before the store opened: no observer is started.
Patching after: the observer is stopped at the first write or read that
sees it, before it goes on (`green.on_patching`), so watchdog's threads,
real, never meet their own locks and queues turned green (eventlet >= 0.40:
"Cannot switch to a different thread", then a deadlock); they end without
a traceback (`green.end_quietly`) and are not waited for.  Events of
another process's writes that arrive between the patching and that first
look may still meet them: nothing of ours waits for watchdog then, and the
reads check their files.
Tests: ``tests/test_watch.py``, ``tests/test_coherence.py``,
``tests/test_eventlet.py``.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Protocol

from watchdog.events import (DirCreatedEvent, DirDeletedEvent, DirMovedEvent,
                             FileClosedEvent, FileCreatedEvent,
                             FileDeletedEvent, FileModifiedEvent,
                             FileMovedEvent, FileSystemEvent,
                             FileSystemEventHandler)
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch
from watchdog.observers.polling import PollingObserver
from watchdog.utils import BaseThread

from . import green
from .errors import ConfigError
from .inotify import Health, why

LOG = logging.getLogger(__name__)

_EVENTS = [FileCreatedEvent, FileDeletedEvent, FileMovedEvent, FileClosedEvent,
           DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
# The polling observer compares snapshots: an in-place edit shows up as
# "modified" there, and there is no "closed" event.
_POLLING_EVENTS = _EVENTS + [FileModifiedEvent]
_LIVE: weakref.WeakSet[Watcher] = weakref.WeakSet()
# watchdog's threads seen running before eventlet's patching (see _stop_green)
_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
# watchdog 7.1 warns when its recursive inotify watch meets a folder it has
# already added (a new shard folder); the watch is fine, the warning is noise.
warnings.filterwarnings("ignore", message="Callback with id .* already exists",
                        category=RuntimeWarning, module="watchdog")


class Watching(Protocol):
    """What the store and its cache need of a watcher."""

    @property
    def healthy(self) -> bool:
        """True while every change below the root is reported."""

    def watch_type(self, name: str, *, resync: bool = True) -> None: ...

    def drain(self) -> None:
        """Report the changes seen so far (the cache calls it first thing
        in every read and every write's settle)."""

    def close(self) -> None: ...


def open_watcher(root: str, on_change: Callable[[str, bool], None],
                 on_lost: Callable[[], None], *, mode: str = "native",
                 poll_interval: float = 1.0) -> Watching:
    """The watcher of `mode` for the store at `root` (see the module)."""
    if mode == "native" and sys.platform.startswith("linux"):
        from .inotify import Inotify
        return Inotify(root, on_change, on_lost)
    return Watcher(root, on_change, on_lost, mode=mode, poll_interval=poll_interval)


class Watcher(FileSystemEventHandler):
    """Calls ``on_change(relpath, is_dir)`` for every changed path below
    `root` and ``on_lost()`` when events were lost."""

    def __init__(self, root: str, on_change: Callable[[str, bool], None],
                 on_lost: Callable[[], None], *, mode: str = "native",
                 poll_interval: float = 1.0) -> None:
        if mode not in ("native", "polling"):
            raise ConfigError(f"watch: {mode!r} is not one of 'native', 'polling'")
        self._root = root
        self._on_change = on_change
        self.on_lost = on_lost
        self.health = Health(root)
        self._events = _POLLING_EVENTS if mode == "polling" else _EVENTS
        self._watched: dict[str, ObservedWatch] = {}
        self._lock = threading.Lock()
        self._green = green.green_threads()
        self._observer = (PollingObserver(timeout=poll_interval) if mode == "polling"
                          else Observer())
        self._observer.daemon = True
        if self._green:
            self.health.fail("eventlet has patched threading, and watchdog's threads cannot "
                       "run as green threads")
            return
        try:
            self._observer.schedule(self, root, recursive=False, event_filter=self._events)
            self._observer.start()
        except OSError as exc:
            self.health.fail(why(exc, root))
            return
        _install_overflow_hook()
        _LIVE.add(self)
        _note_threads()
        green.on_patching(self._stop_green)
        for entry in os.scandir(root):
            if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                self.watch_type(entry.name)

    @property
    def healthy(self) -> bool:
        """True while every change below the root is reported."""
        if self.health.problem is None and (green.green_threads() != self._green
                                     or not self._observer.is_alive()):
            self.health.fail("its thread is not running")     # eventlet's: _stop_green said so
        return self.health.problem is None

    def drain(self) -> None:
        """Nothing to do: the observer's thread reports as events come."""

    def _stop_green(self) -> None:
        """eventlet patched threading after the observer started: stop it
        before this process's next write or read goes on (`green.on_patching`),
        so that watchdog's threads, real, never meet the green locks and
        queues of their own (the hub's "Cannot switch to a different
        thread", a deadlock of theirs).  They end at once, quietly
        (`green.end_quietly`); reads check their files from now on."""
        self.health.fail("eventlet patched threading after the store opened, and watchdog's "
                   "threads cannot run beside green ones")
        _LIVE.discard(self)
        for thread in list(_THREADS):
            green.end_quietly(thread)
        try:
            self._observer.stop()
        except Exception as exc:    # a thread that died: nothing to stop
            LOG.debug("%s: stopping the watcher: %s", self._root, exc)

    def watch_type(self, name: str, *, resync: bool = True) -> None:
        """Watch the type folder `name` (and everything below it).  With
        `resync`, report the folder as changed: whatever happened in it before
        the watch existed was not seen.  The store passes False for a folder
        it has just created itself under the write lock."""
        # Never hold our lock while calling into the observer: its dispatch
        # thread holds the observer's lock while it calls us.  schedule() is
        # idempotent, so a race only schedules the same watch twice.
        with self._lock:
            if (name in self._watched or not self._observer.is_alive()
                    or green.green_threads() != self._green):
                return
        folder = os.path.join(self._root, name)
        try:
            watch = self._observer.schedule(self, folder, recursive=True,
                                            event_filter=self._events)
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR):      # else: gone again
                self.health.fail(why(exc, folder))
            return
        with self._lock:
            self._watched[name] = watch
        _note_threads()         # the emitter it started
        if resync:
            self._on_change(name, True)

    def dispatch(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            relpath = os.path.relpath(os.fsdecode(path), self._root).replace(os.sep, "/")
            if relpath.startswith(".") or relpath.startswith("../"):
                continue
            if event.is_directory and "/" not in relpath:
                self._type_folder_changed(relpath)
            self._on_change(relpath, event.is_directory)

    def _type_folder_changed(self, name: str) -> None:
        if os.path.isdir(os.path.join(self._root, name)):
            self.watch_type(name)
        else:
            with self._lock:
                watch = self._watched.pop(name, None)
            if watch is not None:
                try:
                    self._observer.unschedule(watch)
                except (KeyError, OSError):
                    pass

    def close(self) -> None:
        """Stop the observer thread and release its inotify descriptors.
        After eventlet's patching the threads were stopped already, at the
        first look (`_stop_green`), and are not waited for (joining a real
        thread from a green one would block every green thread)."""
        _LIVE.discard(self)
        if self._green != green.green_threads():       # _stop_green has run
            return
        try:
            self._observer.stop()
            if self._observer.is_alive() and self._observer is not threading.current_thread():
                self._observer.join(timeout=5)
        except Exception as exc:    # a thread that died: nothing to stop
            LOG.debug("%s: stopping the watcher: %s", self._root, exc)


def _note_threads() -> None:
    """Remember watchdog's running threads (before eventlet's patching:
    `threading.enumerate` knows only green ones after it)."""
    threads = [thread for thread in threading.enumerate() if isinstance(thread, BaseThread)]
    _THREADS.update(threads)
    for thread in threads:      # a look of theirs at the patching starts no green thread
        green.own_thread(thread)


class _OverflowHook(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            for watcher in list(_LIVE):
                watcher.on_lost()


_HOOK = _OverflowHook(level=logging.WARNING)


def _install_overflow_hook() -> None:
    for name in ("watchdog.observers.inotify_c", "watchdog.observers.inotify"):
        logger = logging.getLogger(name)
        if _HOOK not in logger.handlers:
            logger.addHandler(_HOOK)
        if not logger.isEnabledFor(logging.WARNING):
            logger.setLevel(logging.WARNING)
