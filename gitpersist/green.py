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


def green_threads() -> bool:
    """True once eventlet has patched `threading` (greenlets, not threads).
    Never imports eventlet: a process that did not import it is not patched."""
    patcher = sys.modules.get("eventlet.patcher")
    return bool(patcher is not None and patcher.is_monkey_patched("thread"))
