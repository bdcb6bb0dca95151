"""What reaches the store's records from outside its own writes: the files
a sync received, another host's format file, and a declaration of secret
fields that grew (at open, from the option or a split cut short).

`Inbound` is the write half of `gitpersist.sync.StorePort` plus the one
consequence a grown declaration has on records already stored: each record
of a type whose declaration grew is rewritten through the store's `put`, so
its newly secret fields move to side files before anything commits them,
and only then does the note of the split owed go (`Declaration.split`; a
kill in between leaves the split to the next open).

Guarantees: a received file is written atomically and is in the change log
(every process's cache learns of it, in every watch mode); a record
received as removed loses its side file too, so a record made again never
inherits old secrets; a declaration is never dropped by a sync (fields
declared here and missing from the received format file are written back
and committed).  Tests: ``tests/test_sync.py``, ``tests/test_secret_protocol.py``,
``tests/test_sync_hostile.py``.

Locking rule: `received` is called with the store's write lock held (the
sync takes it through `StorePort.exclusive`); `adopt_format` and `split`
take it themselves through `exclusive` (re-entrant), and the rewrites go
through `put`, which takes it as every write does.  No state of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from . import encoding, paths
from .changelog import ChangeLog
from .codec import Codec, Document
from .declaration import Declaration
from .layout import FORMAT_FILE, Change
from .reader import Reader
from .recorder import Recorder
from .records import RecordFiles
from .sidefiles import SideFiles


class Rewrites(Protocol):
    """What a split needs of the store: its records and its `put`."""

    def all(self, type: str) -> list[Document]: ...

    def put(self, type: str, id: str, document: Document, *,
            message: str | None = None) -> str: ...


class Inbound:
    """Takes in a sync's files and grown declarations for one store."""

    def __init__(self, files: RecordFiles, sides: SideFiles, reader: Reader, log: ChangeLog,
                 codec: Codec, declaration: Declaration, recorder: Recorder,
                 exclusive: Callable[[], AbstractContextManager[None]],
                 store: Rewrites) -> None:
        self._files = files
        self._sides = sides
        self._reader = reader
        self._log = log
        self._codec = codec
        self._declaration = declaration
        self._recorder = recorder
        self._exclusive = exclusive
        self._store = store

    def received(self, relpath: str, data: bytes | None) -> None:
        """Write (or, with None, remove) the store file at `relpath` as a
        sync received it, and say so in the change log."""
        if data is None:
            self._files.remove(relpath)
            self._sides.remove(relpath)         # a record made again must not inherit them
        else:
            self._files.write(relpath, data)
        self._log.wrote(relpath, None if data is None else self._reader.revision(relpath))

    def adopt_format(self) -> dict[str, list[str]]:
        """After a sync wrote another host's format file: take its
        declaration (the union with this host's, committed if written
        back) and split the records of the types that grew; the fields it
        declared that this host did not, by type (a sync reports them:
        from now on they stay on each host and no longer sync, and anyone
        who can push can declare one)."""
        with self._exclusive():
            added, written = self._declaration.adopt()
            if written is not None:
                self._recorder.commit([Change(FORMAT_FILE, written, encoding.revision_of(written))],
                                      "gitpersist: keep the secret fields declared here")
            self.split(list(added))
        return added

    def split(self, grown: list[str]) -> list[str]:
        """Move the newly declared secret fields of the records of the
        types in `grown` to side files, then drop the note of the split
        owed; the record files rewritten."""
        rewritten = [relpath for type in grown for relpath in self._split_type(type)]
        self._declaration.split(grown)
        return rewritten

    def _split_type(self, type: str) -> list[str]:
        split = [doc for doc in self._store.all(type) if self._codec.names(type) & doc.keys()]
        for doc in split:
            self._store.put(type, doc["id"], doc,
                            message=f"{type} {doc['id']}: secret fields kept local")
        return [paths.record_path(type, doc["id"]) for doc in split]
