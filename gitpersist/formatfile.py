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
"""

from __future__ import annotations

from typing import Any

import orjson

from . import encoding, secret
from .errors import ConfigError, FormatError
from .layout import FORMAT_FILE, FORMAT_VERSION

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
