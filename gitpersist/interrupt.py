"""Stopping a long command between two writes, never inside one.

Guarantees (tests: ``tests/test_cli_ops.py``):

* Inside `deferred()`, in the main thread, SIGINT and SIGTERM do not
  interrupt the code they land in: the signal is held, and the next
  `Deferred.check()` (called between two writes) raises `Interrupted`
  naming it.  So an import cut short has written whole records only, each
  in its batch, and its commit says how far it got.
* A signal still held when the block ends is raised then; the handlers in
  place before the block are put back.
* `terminating()` makes SIGTERM raise `Interrupted` like SIGINT's
  `KeyboardInterrupt`, so ``finally`` blocks run (Python's default for
  SIGTERM is to die at once).
* Outside the main thread nothing changes (Python delivers signals to the
  main thread only).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal (`signal_name`: SIGINT, SIGTERM)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        super().__init__(self.signal_name)

    @property
    def exit_status(self) -> int:
        """The shell's status of a process killed by the signal (130, 143)."""
        return 128 + self.signum


class Deferred:
    """Holds SIGINT and SIGTERM until `check`."""

    def __init__(self) -> None:
        self.pending: int | None = None

    def hold(self, signum: int, frame: FrameType | None) -> None:
        self.pending = self.pending or signum

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived since the block began."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def _handlers(handler: Callable[[int, FrameType | None], None], signums: tuple[int, ...]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def deferred() -> Iterator[Deferred]:
    """``with deferred() as stop: for ...: write(); stop.check()``"""
    stop = Deferred()
    with _handlers(stop.hold, SIGNALS):
        yield stop
    stop.check()


@contextmanager
def terminating() -> Iterator[None]:
    """SIGTERM raises `Interrupted` in the block (its cleanups run)."""
    with _handlers(_raise, (signal.SIGTERM,)):
        yield
