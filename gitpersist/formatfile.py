"""The format file, ``.gitpersist/format.json``: what a store is and what it
keeps secret.

    {"format": 1, "id": "gitpersist", "layout": "type/shard/id.json",
     "secret_fields": {"connections": ["connection_info"]}}

Guarantees (tests: ``tests/test_formatfile.py``):

* `parse` accepts exactly a JSON object whose ``"format"`` is a format
  version this gitpersist understands and whose ``"secret_fields"`` (if
  any) maps type names to field names; anything else (not JSON, a list, a
  newer version, a bad declaration) raises `FormatError` naming the file.
* A declaration is never dropped: `render` keeps what the document
  declares and adds the given fields; `merge` of two hosts' files declares
  every field either declares.  So a sync never lets a secret field of one
  host into the other's git.
* A declaration that grows is crash-safe: the note ``.gitpersist/splitting``
  naming the types is written before the format file shows the new fields
  and goes once their records are split (`splitting`, `split`); an open
  killed in between leaves the split to the next open, which does it
  before the history's recovery commits anything
  (``tests/test_sync_hostile.py``, item 9).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import orjson

from . import encoding, secret
from .errors import ConfigError, FormatError
from .layout import (FORMAT_FILE, FORMAT_VERSION, GITIGNORE_FILE, KEY_FILE, META_GITIGNORE,
                     SPLITTING_FILE)
from .paths import is_type
from .records import RecordFiles

Document = dict[str, Any]


def parse(data: bytes, where: str = FORMAT_FILE) -> Document:
    """The format file's document, checked (see the module docstring)."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise FormatError(f"{where}: not a gitpersist format file (not JSON)") from None
    if not isinstance(document, dict) or "format" not in document:
        raise FormatError(f"{where}: not a gitpersist format file")
    version = document["format"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise FormatError(f"{where}: format {version!r} is not a format version")
    if version > FORMAT_VERSION:
        raise FormatError(f"{where}: store format {version!r} is newer than this gitpersist "
                          f"understands ({FORMAT_VERSION}); upgrade gitpersist")
    declared_secrets(document, where)
    return document


def declared_secrets(document: Document, where: str = FORMAT_FILE) -> secret.Fields:
    """The secret fields `document` declares."""
    try:
        return secret.check_fields(document.get(secret.FORMAT_KEY),
                                   f"{where}: {secret.FORMAT_KEY}")
    except ConfigError as exc:
        raise FormatError(str(exc)) from None


def render(document: Document, fields: secret.Fields) -> bytes:
    """The format file: `document` (the current one, or {} for a new
    store) with this gitpersist's layout and the union of the secret fields
    it declares and `fields`."""
    declared = declared_secrets(document) if document else {}
    union = {type: declared.get(type, frozenset()) | fields.get(type, frozenset())
             for type in declared.keys() | fields.keys()}
    document = {**document, "format": document.get("format", FORMAT_VERSION),
                "layout": "type/shard/id.json", "id": "gitpersist"}
    if union:
        document[secret.FORMAT_KEY] = secret.as_format(union)
    return encoding.dumps(document, FORMAT_FILE)


def merge(mine: bytes, theirs: bytes, where: str = FORMAT_FILE) -> bytes:
    """The format file two hosts both changed: `mine`, declaring the secret
    fields either declares."""
    document, other = parse(mine, where), parse(theirs, where)
    return render(document, declared_secrets(other, where))


class FormatFile:
    """The format file, the meta folder's ``.gitignore`` and the store's
    secret key, on disk.  Methods that write take the write lock
    (`exclusive`) themselves, and only when there is something to write, so
    a store on a read-only mount opens as long as nothing is missing."""

    def __init__(self, files: RecordFiles,
                 exclusive: Callable[[], AbstractContextManager[None]],
                 wrote: Callable[[str], None]) -> None:
        self._files = files
        self._exclusive = exclusive
        self._wrote = wrote         # tells the other processes (the change log)
        self.path = files.path(FORMAT_FILE)

    def open(self, fields: secret.Fields) -> Document:
        """The format document, checked; a new store's format file (with
        `fields`) and ``.gitignore`` are written first.  Also when only the
        ``.gitignore`` is missing: a first open killed between the two files
        left it so, and without it git would see the lock file."""
        found = self._files.read(FORMAT_FILE)
        if found is None or not self._files.exists(GITIGNORE_FILE):
            with self._exclusive():
                if self._files.read(FORMAT_FILE) is None:
                    self._files.write(FORMAT_FILE, render({}, fields))
                if not self._files.exists(GITIGNORE_FILE):
                    self._files.write(GITIGNORE_FILE, META_GITIGNORE)
            found = found or self._files.read(FORMAT_FILE)
        assert found is not None
        return parse(found[0], self.path)

    def read(self) -> bytes | None:
        found = self._files.read(FORMAT_FILE)
        return None if found is None else found[0]

    def signature(self) -> tuple[int, int, int] | None:
        """What tells a changed format file apart (`gitpersist.files.signature`;
        None when there is none): one ``lstat``."""
        try:
            return self._files.signature(self.path)
        except FileNotFoundError:
            return None

    def declare(self, document: Document, wanted: secret.Fields
                ) -> tuple[secret.Fields, list[str]]:
        """(every secret field: those `document` declares plus `wanted`,
        the types whose declaration that grows).  The format file is
        rewritten with the union if it lacks any (read again under the
        lock: another process may have declared more meanwhile)."""
        declared = declared_secrets(document, self.path)
        fields = {type: declared.get(type, frozenset()) | wanted.get(type, frozenset())
                  for type in declared.keys() | wanted.keys()}
        grown = sorted(type for type in fields if fields[type] != declared.get(type))
        if grown:
            with self._exclusive():
                found = self.read()
                document = parse(found, self.path) if found is not None else document
                for type, names in declared_secrets(document, self.path).items():
                    fields[type] = fields.get(type, frozenset()) | names
                # the split is owed before the declaration shows: a kill
                # in between leaves it to the next open (`splitting`)
                self.owe_split(grown)
                self._files.write(FORMAT_FILE, render(document, fields))
                self._wrote(FORMAT_FILE)
        return fields, grown

    def owe_split(self, types: list[str]) -> None:
        """Note that the records of `types` are to be split (write lock held)."""
        self._files.write(SPLITTING_FILE, "".join(
            f"{type}\n" for type in sorted({*self.splitting(), *types})).encode())

    def splitting(self) -> list[str]:
        """The types whose records a declaration that grew has not finished
        splitting (a process killed meanwhile); [] when none."""
        found = self._files.read(SPLITTING_FILE)
        return [] if found is None else sorted(
            {type for type in found[0].decode("utf-8", "replace").split() if is_type(type)})

    def split(self, types: list[str]) -> None:
        """The records of `types` are split: the note goes (if it names no
        other type; called with the write lock held)."""
        if set(self.splitting()) <= set(types) and self._files.exists(SPLITTING_FILE):
            self._files.remove(SPLITTING_FILE)

    def declared(self) -> secret.Fields:
        """What the format file on disk declares now (another process may
        have declared more since we opened); {} if it cannot be read."""
        found = self.read()
        try:
            return declared_secrets(parse(found, self.path), self.path) if found else {}
        except FormatError:
            return {}

    def read_key(self) -> bytes:
        """The store's key as it is on disk (b"" if there is none yet)."""
        found = self._files.read(KEY_FILE)
        return b"" if found is None else found[0]

    def key(self) -> bytes:
        """The store's secret key (`gitpersist.codec`), made if missing."""
        found = self._files.read(KEY_FILE)
        if found is None:
            with self._exclusive():
                found = self._files.read(KEY_FILE)
                if found is None:
                    self._files.write(KEY_FILE, secret.new_key())
                    found = self._files.read(KEY_FILE)
        assert found is not None
        return found[0]
