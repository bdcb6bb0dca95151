"""Moving records in and out of a store: export and import of JSON documents.

Guarantees:

* `export` returns one JSON document holding every record of every type,
  sorted by type and id, with the store's format version and its secret
  fields (`write_file` creates the file 0600: it holds them), and how many
  corrupt record files it left out (`Store.corrupt`, whatever the logging
  configuration: the CLI then fails).
* `read_export` checks the whole document before anything is written: a
  bad type, id or value is an error naming it, and nothing is stored.
  `import_export` then stores the records, added or replaced, never
  deleted; the CLI opens the store with the export's secret fields first,
  so what the exported store kept out of git stays out of git.
* Every import is one `Store.batch`: one commit with git, in reference
  order (volumes before the snapshots that name them).  An import cut
  short (a signal, an error) commits the records it wrote under a message
  that says ``interrupted: 634 of 20000 records written``; a rerun
  rewrites the rest and changes nothing already there (an unchanged
  record is the same bytes).  Tests: ``tests/test_cli_ops.py``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson

from . import encoding, paths, secret
from .errors import ConfigError, GitpersistError, InvalidId
from .layout import FORMAT_VERSION
from .store import Store

EXPORT_KEY = "gitpersist_export"
EXPORT_VERSION = 1


class TransferError(GitpersistError):
    """A file to import that is unreadable or not in a known format."""


class Progress(Protocol):
    total: int | None

    def advance(self, count: int = 1) -> None: ...


class NoProgress:
    """A `Progress` that shows nothing."""
    total: int | None = None

    def advance(self, count: int = 1) -> None:
        pass


# -- files -------------------------------------------------------------------

def read_file(path: str) -> Any:
    """The JSON document in `path` (``-``: stdin)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") \
                else sys.stdin.read().encode()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TransferError(f"{path}: not valid JSON ({exc})") from None


def write_file(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temp file, so a failed write leaves
    any previous file whole.  Created 0600: an export holds whole records,
    secret fields included."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise TransferError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- export ------------------------------------------------------------------

def export(store: Store) -> tuple[dict[str, Any], int]:
    """(the export document, how many corrupt record files were left out:
    those `Store.corrupt` names, which a listing skips)."""
    types = {type: store.all(type) for type in store.types()}
    skipped = sum(len(store.corrupt(type)) for type in types)
    document = {EXPORT_KEY: EXPORT_VERSION, "format": FORMAT_VERSION,
                "types": {type: records for type, records in types.items() if records}}
    if store.secret_fields:     # so that an import keeps them out of git too
        document["secret_fields"] = store.secret_fields
    return document, skipped


def secret_fields_of(document: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The secret fields an export document declares (the store it was
    made from kept them local), checked; None if it declares none."""
    fields = document.get("secret_fields")
    try:
        return secret.as_format(secret.check_fields(fields, f"{source}: secret_fields")) or None
    except ConfigError as exc:
        raise TransferError(str(exc)) from None


# -- import ------------------------------------------------------------------

def is_export(document: Any) -> bool:
    """Whether `document` is a `gitpersist export` document (`read_export`
    checks it)."""
    return isinstance(document, dict) and EXPORT_KEY in document


Record = tuple[str, str, dict[str, Any]]      # type, id, record


def read_export(document: dict[str, Any], source: str = "import") -> list[Record]:
    """The records of an export document, all checked before any is
    written; `TransferError` names the first one at fault."""
    version, format = document.get(EXPORT_KEY), document.get("format")
    if version != EXPORT_VERSION:
        raise TransferError(f"{source}: export version {version!r}; this gitpersist "
                            f"reads version {EXPORT_VERSION}")
    if not isinstance(format, int) or format > FORMAT_VERSION:
        raise TransferError(f"{source}: store format {format!r}; this gitpersist "
                            f"understands up to {FORMAT_VERSION}")
    types = document.get("types")
    if not isinstance(types, dict):
        raise TransferError(f'{source}: "types" must be an object of type: [records]')
    writes = []
    seen = set()
    for type, records in types.items():
        if not paths.is_type(type):
            raise TransferError(f"{source}: {type!r} is not a type name")
        if not isinstance(records, list):
            raise TransferError(f"{source}: types.{type} must be a list of records")
        for index, record in enumerate(records):
            where = f"{source}: types.{type}[{index}]"
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise TransferError(f'{where}: not a record (an object with a string "id")')
            id = record["id"]
            try:
                paths.record_path(type, id)
            except InvalidId as exc:
                raise TransferError(f"{where}: {exc}") from None
            encoding.dumps(record, f"{where} ({type} {id!r})")
            if (type, id) in seen:
                raise TransferError(f"{where}: {type} {id!r} appears twice")
            seen.add((type, id))
            writes.append((type, id, record))
    return writes


def import_export(store: Store, writes: list[Record], *, source: str = "import",
                  progress: Progress | None = None,
                  references: Mapping[tuple[str, str], str] | None = None,
                  checkpoint: Callable[[], None] = lambda: None) -> Counter[str]:
    """Store the records `read_export` returned, in one batch; return how
    many records of each type were written.

    Records go in `in_reference_order` (`references`: (type, field) ->
    the type it names), so an import cut short leaves no record naming
    one not written yet.  `checkpoint()` runs after each record (it may
    raise to stop: `gitpersist.interrupt`); a batch cut short commits
    what it wrote under `batch_message`'s "interrupted" message."""
    progress = progress or NoProgress()
    counts: Counter[str] = Counter()
    progress.total = len(writes)
    what = f"import {os.path.basename(source)}"
    with store.batch(lambda stopped: batch_message(what, counts.total(), len(writes), stopped)):
        for type, id, record in in_reference_order(writes, references or {}):
            store.put(type, id, record)
            counts[type] += 1
            progress.advance()
            checkpoint()
    return counts


def in_reference_order(writes: list[Record], references: Mapping[tuple[str, str], str]
                       ) -> list[Record]:
    """`writes` with the records of each type after those of the types its
    fields name (volumes before their snapshots), else in their order."""
    targets: dict[str, set[str]] = {}
    for (type, _), target in references.items():
        if target != type:
            targets.setdefault(type, set()).add(target)

    def depth(type: str, seen: frozenset[str] = frozenset()) -> int:
        return 1 + max((depth(t, seen | {type}) for t in targets.get(type, set()) - seen),
                       default=-1)
    depths = {type: depth(type) for type in {type for type, _, _ in writes}}
    return sorted(writes, key=lambda write: depths[write[0]])


def batch_message(what: str, done: int, total: int, stopped: BaseException | None) -> str:
    """The commit message of a long write (`what`: ``import 20k.json``):
    ``import 20k.json: 20000 records``, or if it was cut short
    ``import 20k.json: interrupted: 634 of 20000 records written (SIGINT)``."""
    if stopped is None:
        return f"{what}: {total} records"
    return f"{what}: interrupted: {done} of {total} records written ({why_stopped(stopped)})"


def why_stopped(stopped: BaseException) -> str:
    """What cut a command short, in a few words: the signal, or the error."""
    if isinstance(stopped, KeyboardInterrupt):
        return str(stopped) if stopped.args else "SIGINT"
    text = str(stopped).splitlines()[0] if str(stopped) else ""
    return f"{type(stopped).__name__}: {text}"[:120].rstrip(": ")


# -- helpers -----------------------------------------------------------------

def describe_counts(counts: Mapping[str, int]) -> str:
    """``2 volumes, 1 snapshots`` (or ``nothing``)."""
    return ", ".join(f"{count} {type}" for type, count in sorted(counts.items())) \
        or "nothing"
