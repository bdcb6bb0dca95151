"""Canonical JSON for record files, through orjson.

Guarantees:

* The same document always encodes to the same bytes: keys sorted, two-space
  indent, trailing newline.  Rewriting an unchanged record changes nothing on
  disk, so git sees no change.
* What is written reads back equal, or the write is refused with
  `InvalidDocument` naming the offending key path.  The rules:

  - keys must be strings (``1`` and ``"1"`` would collide): refused;
  - integers must fit in 64 bits (-2**63 .. 2**64-1): refused otherwise;
  - NaN and infinities have no JSON form (orjson would write ``null``): refused;
  - strings must be valid unicode (no lone surrogates): refused;
  - sets, bytes and other non-JSON types: refused;
  - tuples are written as arrays and read back as lists;
  - datetimes are written as RFC 3339 strings and read back as strings.
    Naive datetimes are taken as UTC (what OpenStack's ``utcnow()`` returns),
    so they gain a ``+00:00`` suffix.
  - nesting deeper than orjson's limit (254 levels) is refused.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from typing import Any

import orjson

from .errors import CorruptRecord, InvalidDocument

_DUMP_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2
                 | orjson.OPT_APPEND_NEWLINE | orjson.OPT_NAIVE_UTC)
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 64 - 1


def dumps(document: dict[str, Any], where: str) -> bytes:
    """Encode `document` canonically; `where` names it in errors."""
    try:
        # Copied to its size: orjson (3.12+) hands back bytes holding its
        # whole buffer, 4 KiB or the next power of two, and the store keeps
        # these bytes in its cache for every record it writes.
        data = bytes(memoryview(orjson.dumps(document, option=_DUMP_OPTIONS)))
    except TypeError as exc:
        raise InvalidDocument(f"{where}: {_explain(document) or exc}") from None
    # orjson silently writes NaN and infinities as null; only look for them
    # (a walk of the document) when a null is present at all.
    if b"null" in data:
        problem = _explain(document)
        if problem:
            raise InvalidDocument(f"{where}: {problem}")
    return data


def canonical(document: dict[str, Any]) -> bytes:
    """The canonical bytes of a document decoded from JSON (which holds
    none of what `dumps` looks for): what `dumps` gives, without its checks
    (they walk every document with a null, most of cinderlib's).  Raises
    `orjson.JSONEncodeError` (a `TypeError`) on what JSON cannot hold."""
    return bytes(memoryview(orjson.dumps(document, option=_DUMP_OPTIONS)))


def loads(data: bytes, path: str) -> dict[str, Any]:
    """Decode a record file; `CorruptRecord` names `path` when it is not one."""
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptRecord(path, f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise CorruptRecord(path, "not a JSON object")
    if not isinstance(document.get("id"), str):
        raise CorruptRecord(path, 'no string "id" field')
    return document


def _explain(value: Any, path: str = "$", depth: int = 0) -> str | None:
    """Name the first value under `value` that does not round-trip."""
    if depth >= 254:      # the 255th level: orjson refuses it
        return f"nesting deeper than 254 levels at {path}"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"key {key!r} at {path} is not a string"
            problem = _check_str(key, f"key at {path}") or _explain(
                item, f"{path}.{key}", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            problem = _explain(item, f"{path}[{index}]", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return f"integer at {path} does not fit in 64 bits"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return f"{value} at {path} has no JSON form"
        return None
    if isinstance(value, str):
        return _check_str(value, path)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return None
    try:  # other types orjson knows (UUID, enum, dataclass) are fine
        orjson.dumps(value)
    except TypeError:
        return f"{type(value).__name__} at {path} is not a JSON type"
    return None


def _check_str(text: str, path: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"string at {path} is not valid unicode (lone surrogate)"
    return None


def revision_of(data: bytes) -> str:
    """A record version's revision: the git blob id of its bytes.

    Equal bytes give equal revisions, and with git on it is the id of the
    blob in history (`git cat-file -p <revision>` shows it)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
