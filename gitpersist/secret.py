"""Secret fields: stored on this host, never in a record file, so never
committed, pushed or synced.

    Store(path, git=True, secret_fields={"connections": ["connection_info"]})

For each type listed, the named top-level fields of a record go to a side
file, ``.gitpersist/secrets/<type>/<shard>/<id>.json`` (``file_mode`` in
``dir_mode`` folders, written atomically, symlinks refused like every
write), and the record file, the one git tracks, holds the other fields.
`Store.get`, `find` and `all` return the whole document.

Guarantees:

* **Never committed.**  ``.gitpersist/.gitignore`` leaves everything in
  ``.gitpersist`` but the format files out of git, the history commits
  record files (and the two format files) only, and a sync moves commits.
* **Declared once, for good.**  The secret fields are recorded in the
  store's format file (committed: every host and every tool opening the
  store, ``gitpersist import`` included, splits the same fields).  Fields
  can be added, not removed; record files of a type that hold a newly
  declared field are split when the store opens, before the history's
  recovery could commit them.  (A field committed before it was declared
  stays in the history: rewrite it with ``git filter-repo``.)
* **No torn record across the two files.**  A write writes the side file
  first, then the record file, then drops the previous secrets from the
  side file; a deletion removes the record file first.  The side file names
  the record version its secrets belong to (the record file's blob id) and
  keeps the previous secrets until the record file is replaced, so a crash
  in between reads back the old record with its old secrets, or the new
  with the new.  A deletion stopped between its two files leaves a side
  file without a record: the next open of the store removes it (a record
  made again under that id, by a sync say, must not inherit it).
* **Changed elsewhere, secrets kept.**  A record file replaced by other
  means (a sync from another host, a hand edit, ``git checkout``) keeps
  this host's current secret fields; a record created on another host has
  none here.  `Store.restore` keeps the current secret fields (history
  never had them).
* **Revisions see the secrets, and do not reveal them.**  Without secret
  fields a record's revision is its file's git blob id.  With some, it is
  an HMAC-SHA1, keyed by a random key of this store
  (``.gitpersist/secrets/key``), of that blob id and the secret fields:
  ``expect=`` notices a change of a secret field alone, and a revision
  written to a log tells nothing about the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _random
from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import encoding, paths
from .errors import ConfigError, CorruptRecord

FORMAT_KEY: Final = "secret_fields"     # in the format file

Fields = dict[str, frozenset[str]]


def check_fields(secret_fields: Mapping[str, Iterable[str]] | None, where: str) -> Fields:
    """The secret fields by type, checked; `ConfigError` names `where`."""
    if secret_fields is None:
        return {}
    if not isinstance(secret_fields, Mapping):
        raise ConfigError(f"{where}={secret_fields!r}: a mapping of type -> field names")
    checked: Fields = {}
    for type, names in secret_fields.items():
        try:
            paths.check_type(type)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, Iterable) or not all(
                isinstance(name, str) and name and name != "id" for name in names):
            raise ConfigError(f"{where}[{type!r}]={names!r}: top-level field names "
                              "(strings other than 'id')")
        checked[type] = frozenset(names)
    return {type: names for type, names in checked.items() if names}


def as_format(fields: Fields) -> dict[str, list[str]]:
    """`fields` as stored in the format file."""
    return {type: sorted(names) for type, names in sorted(fields.items())}


def split(document: Mapping[str, Any], names: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(public part, secret part) of `document`."""
    public = {key: value for key, value in document.items() if key not in names}
    secret = {key: value for key, value in document.items() if key in names}
    return public, secret


def new_key() -> bytes:
    return _random.token_hex(32).encode()


def revision(key: bytes, public_revision: str, secret: Mapping[str, Any]) -> str:
    """The revision of a record whose file has `public_revision` and whose
    secret fields are `secret` (see the module docstring)."""
    if not secret:
        return public_revision
    data = encoding.dumps(dict(secret), "secret fields")
    return hmac.new(key, public_revision.encode() + b"\0" + data, hashlib.sha1).hexdigest()


def side_data(id: str, public_revision: str, secret: Mapping[str, Any],
              previous: Mapping[str, Any] | None, where: str) -> bytes:
    """The side file: the secrets of record version `public_revision`, and
    those of the version it replaces (`previous`, an entry of the old side
    file) until the record file is replaced."""
    document: dict[str, Any] = {"id": id, "current": {"for": public_revision,
                                                      "fields": dict(secret)}}
    if previous is not None:
        document["previous"] = previous
    return encoding.dumps(document, where)


def read_side(data: bytes, path: str) -> dict[str, Any]:
    """A side file's content, checked; `CorruptRecord` names `path`."""
    document = encoding.loads(data, path)
    for name in ("current", "previous"):
        entry = document.get(name)
        if name == "current" or entry is not None:
            if not (isinstance(entry, dict) and isinstance(entry.get("for"), str)
                    and isinstance(entry.get("fields"), dict)):
                raise CorruptRecord(path, f"no valid {name!r} entry")
    return document


def entry_for(side: Mapping[str, Any] | None, public_revision: str) -> dict[str, Any] | None:
    """The side file entry that goes with record version `public_revision`:
    the one written for it (current first), else the current one (the record
    file was replaced by other means: a sync, a hand edit)."""
    if side is None:
        return None
    current: dict[str, Any] = side["current"]
    previous: dict[str, Any] | None = side.get("previous")
    if current["for"] != public_revision and previous and previous["for"] == public_revision:
        return previous
    return current
