"""Records as bytes: the canonical encoding, the public/secret split, and the
one rule for what a record's revision is.

A record is a JSON object with an ``"id"``.  For a type with declared
secret fields (`gitpersist.secret`) it is stored in two parts: the
*public* part in the record file (what git commits) and the *hidden* part
(the secret fields) in a side file.

The revision rule, written only here (`Codec.revision`):

* no secret fields set: the git blob id of the record file's bytes (what
  ``git hash-object`` prints for it);
* some set: ``HMAC-SHA1(key, public revision + NUL + canonical secrets)``
  with the store's random key, so ``expect=`` notices a change of a secret
  alone and a revision in a log tells nothing about the secret.

`Codec` holds the declaration (type -> secret field names, which only
grows) and the key; it does no I/O and takes no lock (it is replaced, not
changed, under the write lock when a declaration grows).  Tests:
``tests/test_codec.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from . import encoding, paths, secret
from .errors import InvalidDocument

Document = dict[str, Any]


@dataclass(frozen=True)
class Prepared:
    """A document ready to be stored as record `id` of `type`."""
    type: str
    id: str
    relpath: str
    document: Document      # the whole record, a copy of the caller's
    data: bytes             # its canonical bytes (what reads return)
    revision: str           # the one revision (see the module docstring)
    public: Document        # without the secret fields
    public_data: bytes      # what the record file holds
    public_revision: str    # its blob id
    hidden: Document        # the secret fields (empty: none set)


class Codec:
    """Encoding and revisions under a secret-field declaration and key."""

    def __init__(self, fields: secret.Fields | None = None, key: bytes = b"") -> None:
        self.fields: secret.Fields = dict(fields or {})
        self.key = key
        self.generation = 0     # counts the times the declaration grew

    def declare(self, fields: secret.Fields) -> list[str]:
        """Add `fields` to the declaration; the types that grew."""
        grown = sorted(type for type, names in fields.items() if names - self.names(type))
        if grown:
            self.fields = {type: self.names(type) | fields.get(type, frozenset())
                           for type in self.fields.keys() | fields.keys()}
            self.generation += 1
        return grown

    def names(self, type: str) -> frozenset[str]:
        """The secret field names of `type` (empty: none)."""
        return self.fields.get(type, frozenset())

    def revision(self, public_revision: str, hidden: Mapping[str, Any]) -> str:
        """The revision of a record whose file has `public_revision` and
        whose secret fields are `hidden`."""
        return secret.revision(self.key, public_revision, hidden)

    def prepare(self, type: str, id: str, document: Mapping[str, Any]) -> Prepared:
        """Check and encode `document` as record `id` of `type`.  It must be
        a mapping; an ``"id"`` in it must agree with `id`."""
        relpath = paths.record_path(type, id)
        where = f"{type} {id!r}"
        if not isinstance(document, Mapping):
            raise InvalidDocument(f"{where}: a document is a mapping (a dict), "
                                  f"not {document.__class__.__name__}")
        if document.get("id", id) != id:
            raise InvalidDocument(f"{where}: document has id {document['id']!r}")
        data = encoding.dumps({**document, "id": id}, where)
        whole = orjson.loads(data)     # our own copy: the caller may change theirs
        public, hidden = self.split(type, whole)
        if not hidden:
            revision = encoding.revision_of(data)
            return Prepared(type, id, relpath, whole, data, revision, whole, data,
                            revision, {})
        public_data = encoding.dumps(public, where)
        public_revision = encoding.revision_of(public_data)
        return Prepared(type, id, relpath, whole, data, self.revision(public_revision, hidden),
                        public, public_data, public_revision, hidden)

    def revision_of(self, type: str, document: Mapping[str, Any]) -> str:
        """The revision `document` (a whole record, with its ``"id"``) has
        once stored."""
        id = document.get("id")
        where = f"{type} {id!r}"
        public, hidden = self.split(type, document)
        if not hidden:
            return encoding.revision_of(encoding.dumps(dict(document), where))
        return self.revision(encoding.revision_of(encoding.dumps(public, where)), hidden)

    def split(self, type: str, document: Mapping[str, Any]) -> tuple[Document, Document]:
        """(public part, secret part) of `document`."""
        names = self.names(type)
        if not names or not names & document.keys():
            return dict(document), {}
        return secret.split(document, names)

    def public(self, type: str, document: Document | None) -> Document | None:
        """`document` without its secret fields (what commit messages see)."""
        return None if document is None else self.split(type, document)[0]
