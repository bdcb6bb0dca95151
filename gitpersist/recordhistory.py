"""The store's git history, addressed by record: opened with its recovery,
read per record (`versions`, `get_at`, `diff`) and restored from.

Guarantees: opening the history never waits for the write lock (a
SIGSTOPped holder made every open fail): only if the lock is free now does
a sync cut short finish (`gitpersist.sync.finish_interrupted`) and recovery
commit what differs from HEAD, with the commit title that explains what
this open changed; otherwise both are the next write's, and a read-only
store does neither (``tests/test_read_only.py``, ``tests/test_crash.py``).
A restore is a new write through the store's `put` or `delete`, its
message ``... (restored from REV)``; the record keeps the secret fields it
has now, which history never had (``tests/test_history.py``,
``tests/test_secrets.py``).  Without ``git=True`` every history read raises
`StoreError` naming the store.

Locking rule: reads take no store lock (`History` serialises its own git
processes); `open` tries the write lock once (`WriteLock.if_free`) and the
history it makes commits under `exclusive`; a restore's write takes the
lock as every write does.  The `History` is this component's to close.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from . import encoding, paths
from .codec import Codec, Document
from .errors import CorruptRecord, StoreError
from .locking import WriteLock
from .messages import Describe
from .recorder import Recorder

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .history import History, Version
    from .options import Options
    from .sync import StorePort


class Restores(Protocol):
    """What the history needs of its store: its folder and options, and
    the record reads and writes of a restore."""
    root: str
    options: Options

    def get(self, type: str, id: str) -> Document | None: ...

    def put(self, type: str, id: str, document: Document, *,
            message: str | None = None) -> str: ...

    def delete(self, type: str, id: str, *, message: str | None = None) -> bool: ...


class RecordHistory:
    """The history of one store's records (`history`: None until `open`,
    and without ``git=True``)."""

    def __init__(self, store: Restores, codec: Codec, describe: Describe) -> None:
        self._store = store
        self._codec = codec
        self._describe = describe
        self.history: History | None = None

    def open(self, lock: WriteLock, recorder: Recorder, port: StorePort,
             explained: Mapping[str, str]) -> None:
        """Open the git history, `recorder`'s from now on; a sync cut short
        finishes first (through `port`, the store; what it writes is
        committed), then recovery commits what differs from HEAD
        (`explained`: the files this open changed, and the commit title
        that says why), both only if the write lock is free now."""
        from .history import History   # GitPython loads only when needed
        opts = self._store.options
        history = recorder.history = self.history = History(
            self._store.root, lock=lock.exclusive, author=opts.author,
            commit_mode=opts.commit_mode, commit_delay=opts.commit_delay, fsync=opts.fsync,
            create=not opts.read_only)
        history.recovery_due = True     # until done: if not now, by the next write
        with lock.if_free() as free:      # never, read-only
            if free:
                from .sync import finish_interrupted
                finish_interrupted(port)
                history.recover_quietly(explained)

    def versions(self, type: str, id: str, limit: int | None) -> list[Version]:
        return self._required().versions(paths.record_path(type, id), limit)

    def get_at(self, type: str, id: str, rev: str) -> Document | None:
        relpath = paths.record_path(type, id)
        data = self._required().read(relpath, rev)
        return None if data is None else encoding.loads(data, f"{rev}:{relpath}")

    def diff(self, type: str, id: str, rev1: str, rev2: str | None) -> str:
        return self._required().diff(paths.record_path(type, id), rev1, rev2)

    def restore(self, type: str, id: str, rev: str) -> str | None:
        """Make the record what it was at `rev`, by a new write."""
        document = self.get_at(type, id, rev)
        now = self._readable(type, id)
        if document is not None and self._codec.names(type):    # history never had them
            document.update(self._codec.split(type, now or {})[1])
        message = self._describe(type, id, self._codec.public(type, now),
                                 self._codec.public(type, document)) + f" (restored from {rev})"
        if document is None:
            self._store.delete(type, id, message=message)
        return None if document is None else self._store.put(type, id, document, message=message)

    def flush(self) -> None:
        """Wait until every write so far is committed."""
        if self.history is not None and not self._store.options.read_only:
            self.history.flush()

    def close(self) -> None:
        """Release the history's processes and files (its last commit first)."""
        if self.history is not None:
            self.history.close()

    def _readable(self, type: str, id: str) -> Document | None:
        """The record, or None if absent or broken (what a restore mends)."""
        try:
            return self._store.get(type, id)
        except CorruptRecord:
            return None

    def _required(self) -> History:
        if self.history is None:
            raise StoreError(f"store {self._store.root} has no git history "
                             "(open it with git=True)")
        return self.history
