"""A one-line progress bar for long commands, on stderr.

Guarantees: it writes nothing unless its stream is a terminal, redraws at
most ten times a second, and erases its line when closed, so the command's
own output (on stdout) is never interleaved with it.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_INTERVAL = 0.1


class Progress:
    """``with Progress("import", total) as bar: ... bar.advance()``"""

    def __init__(self, label: str, total: int | None = None,
                 stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.stream = sys.stderr if stream is None else stream
        self.enabled = not quiet and _is_terminal(self.stream)
        self._drawn = 0.0
        self._width = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= _INTERVAL or self.done == self.total):
            self._drawn = now
            self._draw()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _draw(self) -> None:
        if self.total:
            filled = min(_WIDTH, _WIDTH * self.done // self.total)
            bar = "#" * filled + "-" * (_WIDTH - filled)
            line = (f"{self.label} [{bar}] {self.done}/{self.total} "
                    f"{100 * self.done // self.total}%")
        else:
            line = f"{self.label} {self.done}"
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = max(self._width, len(line))


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
