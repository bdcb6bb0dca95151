"""Where a store's changes go once their files are written: the history (if
any), one commit per change or one per batch, and then the commit
listeners (a syncer that sends new commits).

`Recorder` replaces every "if there is a history" of the store: without
one it records nothing and `active` is False, so a write does not even
read what it replaces unless it must check ``expect=``.

A write that holds the write lock once (not inside a batch or another
locked block) records with ``shared=True`` and calls `settle` once it has
released the lock: a sync-mode commit is then shared with the writers that
wrote meanwhile (group commit, `gitpersist.history.group`), and the write
still returns after its commit.

Locking rule: every method but `settle` is called with the store's write
lock held (`gitpersist.locking`); the recorder has no lock of its own.  The batch
buffer belongs to the thread holding the write lock.  Tests:
``tests/test_recorder.py``, ``tests/test_history.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from .layout import Change


BatchMessage = Callable[[BaseException | None], str]
"""``message(stopped)``: a batch's commit message, given the exception that
ended it (None: it ended normally)."""


class HistoryPort(Protocol):
    """What the recorder needs of a history (`gitpersist.history.History`)."""

    def record(self, changes: list[Change], message: str) -> None: ...

    def record_shared(self, change: Change, signature: tuple[int, int, int] | None,
                      message: str) -> int | None: ...

    def wait_committed(self, ticket: int) -> None: ...

    def commit_pending(self, relpath: str, data: bytes | None | Literal[False]) -> None: ...


class Recorder:
    """Records changes in `history` (None: nowhere)."""

    def __init__(self, history: HistoryPort | None) -> None:
        self.history = history
        self.listeners: list[Callable[[], None]] = []   # after each (queued) commit
        self._batch: list[Change] | None = None

    @property
    def active(self) -> bool:
        """True if changes are recorded (a write must describe them)."""
        return self.history is not None

    @property
    def batching(self) -> bool:
        """True inside a batch: a change's own message is not used (the
        batch's is), so a write need not describe it."""
        return self._batch is not None

    def before_change(self, relpath: str, data: bytes | None | Literal[False]) -> None:
        """Before `relpath` is written (it holds `data` now: None if absent,
        False if unreadable): a change of it not committed yet (another
        process's queued one, a hand edit) and not part of this batch gets
        its own commit first (`History.commit_pending`)."""
        if self.history is not None and not (
                self._batch is not None and any(c.relpath == relpath for c in self._batch)):
            self.history.commit_pending(relpath, data)

    def record(self, change: Change, message: str, *, shared: bool = False,
               signature: tuple[int, int, int] | None = None) -> int | None:
        """`change` is durable on disk: commit it (or add it to the batch).
        With `shared` (see the module doc; `signature`: the file's after the
        write, None for a removal), the commit may wait for `settle`: the
        value returned is what to pass it."""
        if self.history is None:
            return None
        if self._batch is not None:
            self._batch.append(change)
        elif shared:
            return self.history.record_shared(change, signature, message) or 0
        else:
            self.commit([change], message)
        return None

    def settle(self, ticket: int | None) -> None:
        """After the write lock was released: return once the change
        `record` gave `ticket` for is committed, then tell the listeners
        (nothing for None: nothing was left to wait for; 0: queued)."""
        if ticket is None or self.history is None:
            return
        if ticket:
            self.history.wait_committed(ticket)
        for listener in self.listeners:
            listener()

    def commit(self, changes: list[Change], message: str) -> None:
        """Commit `changes` now (outside any batch), then tell the listeners."""
        if self.history is None or not changes:
            return
        self.history.record(changes, message)
        for listener in self.listeners:
            listener()

    @contextmanager
    def batch(self, message: str | BatchMessage) -> Iterator[None]:
        """Everything recorded inside is one commit with `message` when the
        block ends, also when it ends with an exception (history matches the
        files).  A callable `message` is given that exception (None if the
        block ended normally) and returns the message, so that a batch cut
        short says so.  Nested batches join the outer one."""
        if self._batch is not None:
            yield
            return
        self._batch = []
        stopped: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            stopped = exc
            raise
        finally:
            changes, self._batch = self._batch, None
            if changes:
                self.commit(changes, message if isinstance(message, str) else message(stopped))
