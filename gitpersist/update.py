"""Read-modify-write of one record, retried when another writer got in
first: the optimistic loop over `Store.get` and ``Store.put(expect=...)``.

    revision, written = update(store, "volumes", "v1",
                               lambda doc: None if doc is None else {**doc, "size": 2})
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import ConflictError
from .store import ABSENT, Document, Store

ATTEMPTS = 20

Change = Callable[[Document | None], Document | None]
"""``change(current record or None)``: the record to write, or None to
write nothing.  Called again with the new current record after a conflict,
so it must not have side effects beyond raising."""


def update(store: Store, type: str, id: str, change: Change, *,
           attempts: int = ATTEMPTS) -> tuple[str | None, Document | None]:
    """Write ``change(current record)`` unless it is None, expecting the
    record unchanged meanwhile (or still absent); when another writer got in
    first, read again and retry, up to `attempts` times in all (then the
    `ConflictError` propagates).  Returns the revision and the document
    written, or ``(None, None)`` when `change` returned None.  An exception
    `change` raises propagates, nothing written."""
    attempt = 0
    while True:
        current = store.get(type, id)
        new = change(current)
        if new is None:
            return None, None
        expect = ABSENT if current is None else store.revision_of(type, current)
        try:
            return store.put(type, id, new, expect=expect), new
        except ConflictError:
            attempt += 1
            if attempt >= attempts:
                raise
            # The cache may not have seen the other process's write yet.
            time.sleep(min(0.05, 0.001 * 2 ** attempt))
