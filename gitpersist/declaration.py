"""The secret fields a store keeps out of its record files: what its format
file declares plus what it was asked to keep, a set that only grows.

`Declaration` is the one owner of that set's changes: at open (the option's
fields written to the format file, the key made, orphan side files swept),
after a sync brought another host's format file (`adopt`: the union,
written back if the file lacks any), and when another process on this host
declared more (`changed`, from the change log).  The change log can miss
one (replaced past its size limit, a ``git pull`` or a hand edit writes
none): every write asks `stale` under the write lock first, one ``lstat``
of the format file against the signature last read, and a changed file
is read again before the write (``tests/test_sync_hostile.py``, item 8).  The current set lives in
the `Codec` every read and write uses.  Writes take the store's write lock
through `exclusive`; `changed` is called with the cache's lock held and
only reads.  Tests: ``tests/test_secret_protocol.py``, ``tests/test_sync.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from . import secret
from .codec import Codec, Document
from .formatfile import FormatFile, parse
from .sidefiles import SideFiles


class Declaration:
    def __init__(self, format: FormatFile, codec: Codec, sides: SideFiles,
                 exclusive: Callable[[], AbstractContextManager[None]]) -> None:
        self._format = format
        self._codec = codec
        self._sides = sides
        self._exclusive = exclusive
        self._seen: tuple[int, int, int] | None = None     # the format file last read

    def stale(self) -> bool:
        """Whether the format file changed since the declaration was last
        read (then `changed` is due before the next write)."""
        return self._format.signature() != self._seen

    def open(self, wanted: secret.Fields) -> list[str]:
        """At open: the format file's fields plus `wanted`; the types whose
        declaration grew, or grew in an open killed before it had split
        them (their records are to be split, then `split` says so)."""
        self._seen = self._format.signature()      # before the read: a change since is stale
        grown = self._take(self._format.open(wanted), wanted)
        return sorted({*grown, *self._format.splitting()})     # and a split cut short

    def split(self, types: list[str]) -> None:
        """The records of `types` (the types that grew) no longer carry
        their secret fields inline: the note of the split owed goes."""
        if types:
            with self._exclusive():
                self._format.split(types)

    def adopt(self) -> tuple[dict[str, list[str]], bytes | None]:
        """After a sync wrote another host's format file (write lock held):
        (the fields it declared that this host did not, by type: those
        types' records are to be split; the format file's content if it
        had to be written back with fields declared here and missing
        there)."""
        self._seen = self._format.signature()
        found = self._format.read()
        if found is None:
            return {}, None
        before = dict(self._codec.fields)
        self._take(parse(found, self._format.path), before)
        data = self._format.read()
        added = {type: sorted(set(names) - set(before.get(type, ())))
                 for type, names in sorted(self._codec.fields.items())
                 if names != before.get(type)}
        if added:       # the records to split: a kill before `split` leaves it to the next open
            self._format.owe_split(list(added))
        return added, (data if data is not None and data != found else None)

    def changed(self) -> list[str]:
        """Another process wrote the format file (the change log says so):
        take what it declares now; the types that grew."""
        self._seen = self._format.signature()
        grown = self._codec.declare(self._format.declared())
        if grown and not self._codec.key:
            self._codec.key = self._format.read_key()
        return grown

    def _take(self, document: Document, wanted: secret.Fields) -> list[str]:
        fields, grown = self._format.declare(document, wanted)
        if grown:       # written under the write lock, what every process declared
            self._seen = self._format.signature()
        if fields and not self._codec.key:
            self._codec.key = self._format.key()
        self._codec.fields = fields
        if fields:
            self._sides.sweep(self._exclusive)
        return grown
