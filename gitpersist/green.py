"""Whether eventlet has turned this process's threads green.

Ember-CSI and cinder's own command and test modules call
``eventlet.monkey_patch()``, sometimes after a store is open.  Locks made
before the patching let every greenlet of a thread in (they share its
identity), and watchdog's threads cannot run green: the components that
care ask here (`gitpersist.locking`, `gitpersist.watcher`).  Tests:
``tests/test_eventlet.py``.
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def green_threads() -> bool:
    """True once eventlet has patched `threading` (greenlets, not threads).
    Never imports eventlet: a process that did not import it is not patched."""
    patched = getattr(sys.modules.get("eventlet.patcher"), "is_monkey_patched", None)
    return bool(patched is not None and patched("thread"))      # None: not (yet) imported


class Condition(threading.Condition):
    """`threading.Condition` that survives eventlet's patching after it was
    made.  eventlet's ``monkey_patch`` swaps every existing RLock for a
    green one where it finds it in a dict (the condition's ``_lock``), but
    `threading.Condition` keeps the old lock's bound methods too, so the
    first ``notify`` after the patching raised "cannot notify on
    un-acquired lock".  Here every use goes through ``_lock`` as it is now."""

    def __init__(self) -> None:
        super().__init__(threading.RLock())
        for name in ("acquire", "release", "_release_save", "_acquire_restore", "_is_owned"):
            self.__dict__.pop(name, None)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))     # type: ignore[attr-defined]

    def release(self) -> None:
        self._lock.release()    # type: ignore[attr-defined]

    def _release_save(self) -> Any:
        return self._lock._release_save()   # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)  # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())     # type: ignore[attr-defined]
