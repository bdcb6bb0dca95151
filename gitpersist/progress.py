"""A one-line progress bar for long commands, on stderr.

Guarantees (tests: ``tests/test_cli.py``, ``tests/test_cli_ops.py``): it
writes nothing unless its stream is a terminal (nor with ``quiet``),
redraws at most ten times a second, and erases its line when closed, so
the command's own output (on stdout) is never interleaved with it.  It
shows the count, the rate and, when the total is known, the time left,
from its first draw on; a phase with nothing to count yet (reading a
database) shows at once what it is doing and how long it has taken
(`phase`), redrawn every second by a daemon thread that stops with it.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

_WIDTH = 30
_INTERVAL = 0.1
_TICK = 1.0


class Progress:
    """``with Progress("import", total) as bar: ... bar.advance()``"""

    def __init__(self, label: str, total: int | None = None,
                 stream: TextIO | None = None, *, quiet: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = not quiet and _is_terminal(self.stream)
        self._clock = clock
        self._started: float | None = None
        self._drawn = 0.0
        self._width = 0
        self._lock = threading.Lock()       # the ticker thread draws too

    def advance(self, count: int = 1) -> None:
        now = self._clock()
        if self._started is None:
            self._started = now
        self.done += count
        if self.enabled and (now - self._drawn >= _INTERVAL or self.done == self.total
                             or self.done == count):
            self._drawn = now
            self._draw(self._line(now))

    @contextmanager
    def phase(self, what: str) -> Iterator[None]:
        """Show ``label: what 3s`` at once and every second until the block ends."""
        if not self.enabled:
            yield
            return
        started = self._clock()
        stop = threading.Event()

        def draw() -> None:
            self._draw(f"{self.label}: {what} {duration(self._clock() - started)}")

        def tick() -> None:
            while not stop.wait(_TICK):
                draw()
        draw()
        ticker = threading.Thread(target=tick, name=f"gitpersist-progress {self.label}",
                                  daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()

    def close(self) -> None:
        with self._lock:
            if self.enabled and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _line(self, now: float) -> str:
        elapsed = now - (self._started if self._started is not None else now)
        rate = self.done / elapsed if elapsed > 0 else None
        speed = f"{rate:,.0f}/s" if rate is not None else "-/s"
        if self.total:
            filled = min(_WIDTH, _WIDTH * self.done // self.total)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            left = (f"ETA {duration((self.total - self.done) / rate)}" if rate
                    else "ETA -")
            return (f"{self.label} [{bar}] {self.done}/{self.total} "
                    f"{100 * self.done // self.total}% {speed} {left}")
        return f"{self.label} {self.done} {speed}"

    def _draw(self, line: str) -> None:
        with self._lock:
            self.stream.write("\r" + line.ljust(self._width))
            self.stream.flush()
            self._width = max(self._width, len(line))


def duration(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
