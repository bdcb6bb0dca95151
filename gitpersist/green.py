"""Whether eventlet has turned this process's threads green, and the few
primitives that stay right across the patching.

Ember-CSI and cinder's own command and test modules call
``eventlet.monkey_patch()``, sometimes after a store is open (importing
``cinder.tests.fake_driver`` does).  Locks made before the patching let
every greenlet of a thread in (they share its identity), and a thread
started before the patching (a real thread) must not touch a green lock or
condition made or swapped in since: when a real thread and another thread
meet on one, the hub raises "Cannot switch to a different thread" and the
waiter is never woken (eventlet >= 0.40 made that a deadlock for us: it
swaps the RLocks it finds for green ones and threading's registry of
threads for its own).  The components that care ask here
(`gitpersist.locking`, `gitpersist.history.worker`, `gitpersist.watcher`);
their design after the patching: a real thread of ours stops doing work and
parks (`park`), watchdog's threads are stopped (`end_quietly`), the green
threads do the rest.  Tests: ``tests/test_eventlet.py``,
``tests/test_green.py``.

Guarantees:

* `Condition` works for real threads before the patching and green ones
  after, and a section entered before the patching releases the lock it
  took (eventlet swapped the condition's lock meanwhile).
* `Wakeup` lets a green thread wake a real one without any green primitive:
  eventlet greens RLocks only, never plain locks.
* A thread started before the patching and ending after it prints no
  traceback (`end_quietly`), and `park` never ends one.
* `in_own_thread` tells a real background thread of ours (`own_thread`:
  the history's worker, the sync's, watchdog's) from the green threads: what must start a green thread in its stead
  (`gitpersist.sync.syncer`) asks, since a thread started from a real one
  after the patching would wait for that thread's own hub, for ever.
"""

from __future__ import annotations

import _thread
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

# The caller's real thread, whatever eventlet did to threading.get_ident
# since (a greenlet of the main thread has the main thread's).
_real_ident = _thread.get_ident


def green_threads() -> bool:
    """True once eventlet has patched `threading` (greenlets, not threads).
    Never imports eventlet: a process that did not import it is not patched.
    The first call that finds the process patched calls what `on_patching`
    registered (every write asks, in `gitpersist.locking`, and every read
    of a watched store, in `gitpersist.watcher`)."""
    patched = getattr(sys.modules.get("eventlet.patcher"), "is_monkey_patched", None)
    found = bool(patched is not None and patched("thread"))     # None: not (yet) imported
    while found and _ON_PATCHING:
        method = _ON_PATCHING.pop()()
        if method is not None:
            method()
    return found


def on_patching(method: Callable[[], None]) -> None:
    """Call the bound `method` (held weakly) once, at the first
    `green_threads()` that finds the process patched: before the write or
    read that asked goes on."""
    _ON_PATCHING.append(weakref.WeakMethod(method))


# weak references: eventlet's search for locks to swap does not enter them
_ON_PATCHING: list[weakref.WeakMethod[Callable[[], None]]] = []


class Condition(threading.Condition):
    """`threading.Condition` that survives eventlet's patching after it was
    made.  eventlet's ``monkey_patch`` swaps every existing RLock for a
    green one where it finds it in a dict (the condition's ``_lock``), but
    `threading.Condition` keeps the old lock's bound methods too, so the
    first ``notify`` after the patching raised "cannot notify on
    un-acquired lock".  Here every acquire goes through ``_lock`` as it is
    now, and every release to the lock its thread took: a section entered
    before the swap leaves through the old lock (held in a tuple, which
    eventlet's search for locks does not enter).

    Residual, by design: a real thread inside a section at the moment of
    the patching and a green thread entering one then are not excluded
    from each other for that one section (in-memory work, microseconds);
    the real threads of ours stop using the condition once they see the
    patching (`gitpersist.history.worker`)."""

    def __init__(self) -> None:
        super().__init__(threading.RLock())
        for name in ("acquire", "release", "_release_save", "_acquire_restore", "_is_owned"):
            self.__dict__.pop(name, None)
        self._taken: dict[int, tuple[Any, ...]] = {}    # real thread -> the locks it holds
        # Called at every notify: a thread that sleeps on a `Wakeup` rather
        # than on the condition (a real thread must not wait on a condition
        # a green one notifies) sets it to the wake-up's ``set``.
        self.on_notify: Callable[[], None] = _nothing

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        lock = self._lock   # type: ignore[attr-defined]
        if not lock.acquire(blocking, timeout):
            return False
        ident = _real_ident()
        self._taken[ident] = (*self._taken.get(ident, ()), lock)
        return True

    __enter__ = acquire

    def release(self) -> None:
        ident = _real_ident()
        *rest, lock = self._taken.get(ident) or (self._lock,)   # type: ignore[attr-defined]
        if rest:
            self._taken[ident] = tuple(rest)
        else:
            self._taken.pop(ident, None)
        lock.release()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def notify(self, n: int = 1) -> None:       # notify_all calls it too
        super().notify(n)
        self.on_notify()

    def _release_save(self) -> Any:
        self._taken.pop(_real_ident(), None)        # after wait(): the lock of now
        return self._lock._release_save()   # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        taken = self._taken.get(_real_ident())
        lock = taken[-1] if taken else self._lock   # type: ignore[attr-defined]
        return bool(lock._is_owned())


class Wakeup:
    """A one-slot wake-up call: `wait` returns once `set` was called since
    the last `wait` returned, or after `timeout` seconds.  Made of a plain
    lock of the kind current when it is made: eventlet never swaps plain
    locks, so a real thread can sleep on it and a green one wake it
    (releasing a real lock never blocks)."""

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()

    def set(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:        # set already, not taken yet
            pass

    def wait(self, timeout: float | None) -> bool:
        """True if woken, False after `timeout` seconds (None: no limit)."""
        return self._lock.acquire(True, -1 if timeout is None else max(timeout, 0.0))


def own_thread(thread: threading.Thread) -> None:
    """Note `thread` (started) as a background thread of ours: for
    `in_own_thread`, if it is real (started before the patching; after it,
    even `_real_ident` may be eventlet's, if this module was imported
    after).  Held weakly."""
    if not green_threads():
        _OWN.add(thread)


def in_own_thread() -> bool:
    """True in a thread noted by `own_thread` that was started before the
    patching (a real one: its ident is the real thread's, not a greenlet's)."""
    ident = _real_ident()       # alive: an ended thread's ident is given out again
    return any(thread.ident == ident and thread.is_alive() for thread in list(_OWN))


_OWN: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


def park() -> None:
    """Block the calling thread for good.  For a real thread that saw the
    patching: it cannot end without a traceback (`end_quietly`) and must
    not wait on anything green; the plain lock here was made before the
    patching (at import), and only this function takes it."""
    while True:
        _PARKING.acquire()


_PARKING = _thread.allocate_lock()


def end_quietly(thread: threading.Thread) -> None:
    """Let `thread`, started before eventlet patched threading, end after
    the patching without a traceback.  eventlet >= 0.40 swaps threading's
    registry of running threads (``_active``) for its own and
    ``threading.get_ident`` for a greenlet's identity, so such a thread
    does not find itself there when it ends and prints "Exception ignored
    in thread started by ... KeyError".  Its removal from the registry is
    made a no-op: the entry stays in the registry of before the patching,
    which threading no longer reads (with eventlet < 0.40 it is the same
    registry, and `threading.enumerate` keeps listing the ended thread)."""
    setattr(thread, "_delete", _nothing)       # the one method that fails


def _nothing() -> None:
    pass
