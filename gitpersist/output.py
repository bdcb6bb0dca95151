"""What the `gitpersist` command prints: tables, JSON, NDJSON and CSV,
dates, and the pager, as git does them.

Guarantees (tests: ``tests/test_cli_ops.py``):

* `emit` prints one result in the format asked: ``table`` (aligned columns
  for people, the header even with no rows), ``json`` (one array),
  ``ndjson`` (one object a line), ``csv`` (the table's columns, whole
  values, RFC 4180 quoting).  Cells never carry a control character
  (`messages.printable`).
* `date` shows a commit's time with its zone (``2026-11-24 16:41:37
  +0000``), or as git's ``--date=local|iso|relative``.
* `paged` sends what a command prints through a pager only when stdout is
  a terminal and the text is taller than it, as git does: the pager is
  ``$GITPERSIST_PAGER``, else ``$PAGER``, else ``less -FRX``; an empty
  value or ``cat`` means none, and so does ``--no-pager``.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

FORMATS = ("table", "json", "ndjson", "csv")
DATES = ("default", "local", "iso", "relative")
ENV_PAGER = "GITPERSIST_PAGER"


def emit(format: str, values: Sequence[Any], header: Sequence[str],
         rows: Sequence[Sequence[str]]) -> None:
    """Print `values` (json, ndjson) or the table `header` + `rows` (table, csv)."""
    if format == "json":
        print(orjson.dumps(list(values), option=orjson.OPT_INDENT_2).decode())
    elif format == "ndjson":
        for value in values:
            print(orjson.dumps(value).decode())
    elif format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        sys.stdout.write(out.getvalue())
    else:
        table(header, rows)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def date(when: datetime.datetime, style: str = "default",
         now: datetime.datetime | None = None) -> str:
    """`when` (timezone-aware) as ``default`` (its own zone), ``local``
    (this machine's), ``iso`` (ISO 8601) or ``relative`` (``3 hours ago``)."""
    if style == "iso":
        return when.isoformat()
    if style == "relative":
        return _relative((now or datetime.datetime.now(datetime.timezone.utc)) - when)
    shown = when.astimezone() if style == "local" else when
    return shown.strftime("%Y-%m-%d %H:%M:%S %z")


def _relative(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("week", 7 * 86400),
                       ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size or unit == "second":
            count = seconds // size
            return f"{count} {unit}{'s' * (count != 1)} ago"
    raise AssertionError("unreachable")


def pager_command() -> str | None:
    """The pager to run, or None (see the module doc)."""
    for name in (ENV_PAGER, "PAGER"):
        value = os.environ.get(name)
        if value is not None:
            return None if value.strip() in ("", "cat") else value
    return "less -FRX"


@contextlib.contextmanager
def paged(enabled: bool = True) -> Iterator[None]:
    """Gather what the block prints; page it if it is taller than the terminal."""
    stdout = sys.stdout
    command = pager_command() if enabled and _is_terminal(stdout) else None
    if command is None:
        yield
        return
    buffer = io.StringIO()
    sys.stdout = buffer
    try:
        yield
    finally:
        sys.stdout = stdout
    text = buffer.getvalue()
    if text.count("\n") < shutil.get_terminal_size().lines:
        stdout.write(text)
        return
    stdout.flush()
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX")}
    try:
        subprocess.run(command, shell=True, input=text.encode(), env=env, check=False)
    except OSError:          # no such pager: print as if there were none
        stdout.write(text)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
