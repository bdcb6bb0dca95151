"""Where a record lives: ``<type>/<shard>/<encoded id>.json``.

Guarantees:

* Any non-empty string id maps to exactly one file name, and distinct ids map
  to distinct names, also on case-insensitive file systems: the name uses
  only lower-case ASCII letters, digits, ``-``, ``_`` and ``~``.
* A record path never leaves its type folder: ``.``, ``/``, ``\\``, NUL and
  every other character outside ``[a-z0-9-]`` are escaped as ``_xx`` (the
  hex of each UTF-8 byte), upper case included.  Names reserved on Windows
  (``con``, ``nul``, ``com1`` ...) get their first letter escaped.
* Lower-case UUIDs and other plain names stay readable:
  ``volumes/4c/0f1e2d3c-....json``.
* Short names decode back to their id without reading the file.  Names whose
  encoding would exceed `MAX_STEM` characters keep a readable prefix plus
  ``~`` and a SHA-256 of the id; their id is read from the record's ``"id"``
  field.
* The shard folder (two hex digits of a hash of the id, 256 folders) keeps
  every folder, and every git tree, small at 100k records.
"""

from __future__ import annotations

import hashlib
import re

from .errors import InvalidId

MAX_STEM = 180          # well under the common 255-byte name limit
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ALL_SAFE_RE = re.compile(r"[a-z0-9-]+")     # ids that are their own stem (UUIDs)
_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_ESCAPE_RE = re.compile(r"(?:_[0-9a-f]{2})+")
_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_STEM_RE = re.compile(r"[a-z0-9_~-]{1,%d}" % MAX_STEM)     # what encode_id makes
_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"]
    + [f"{dev}{n}" for dev in ("com", "lpt") for n in "0123456789"])
SUFFIX = ".json"


def check_type(type: str) -> str:
    """Return `type` if it can name a type folder, else raise `InvalidId`."""
    if not isinstance(type, str) or not _TYPE_RE.fullmatch(type) or type in _RESERVED:
        raise InvalidId(
            f"type {type!r}: use 1-64 characters of a-z, 0-9, '_' and '-', "
            "starting with a letter or digit")
    return type


def check_id(id: str) -> str:
    """Return `id` if it can be stored, else raise `InvalidId`."""
    if not isinstance(id, str):
        raise InvalidId(f"id {id!r}: ids are strings, not {type(id).__name__}")
    if not id:
        raise InvalidId("id '': ids cannot be empty")
    try:
        id.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidId(f"id {id!r}: not valid unicode (lone surrogate)") from None
    return id


def encode_id(id: str) -> str:
    """The file name stem of `id` (without the ``.json`` suffix)."""
    check_id(id)
    stem = id if _ALL_SAFE_RE.fullmatch(id) else "".join(
        ch if ch in _SAFE else _escape(ch) for ch in id)
    if stem in _RESERVED:
        stem = _escape(stem[0]) + stem[1:]
    if len(stem) > MAX_STEM:
        digest = hashlib.sha256(id.encode("utf-8")).hexdigest()
        stem = stem[:MAX_STEM - 65] + "~" + digest
    return stem


def decode_id(stem: str) -> str | None:
    """The id of a file name stem, or None for hashed (long-id) stems and
    for names that `encode_id` would not have produced."""
    if "~" in stem:
        return None
    id = _ESCAPE_RE.sub(_unescape, stem)
    try:
        return id if encode_id(id) == stem else None
    except InvalidId:
        return None


def shard(id: str) -> str:
    return hashlib.blake2b(id.encode("utf-8"), digest_size=1).hexdigest()


def record_path(type: str, id: str) -> str:
    """Relative POSIX path of a record inside the store."""
    stem = encode_id(id)         # validates the id before it is hashed
    return f"{check_type(type)}/{shard(id)}/{stem}{SUFFIX}"


def is_path_of(relpath: str, type: str, id: str) -> bool:
    """True if `relpath` is ``record_path(type, id)`` (`type` a valid type
    name); a quarter of the time for ids that are their own stem (UUIDs),
    what loading 100k records asks of each."""
    if isinstance(id, str) and len(id) <= MAX_STEM and id not in _RESERVED \
            and _ALL_SAFE_RE.fullmatch(id):
        return relpath == f"{type}/{shard(id)}/{id}{SUFFIX}"
    try:
        return relpath == record_path(type, id)
    except InvalidId:
        return False


def is_record_name(name: str) -> bool:
    """True for a record file name `encode_id` could make (with the suffix)."""
    return name.endswith(SUFFIX) and _STEM_RE.fullmatch(name[:-len(SUFFIX)]) is not None


def split_record_path(relpath: str) -> tuple[str, str] | None:
    """(type, stem) of a record path, or None if `relpath` is not one: a
    type folder, a two-hex-digit shard and a stem `encode_id` could make
    (never ``..``, a dot file or a name with a separator, whoever wrote it:
    a remote tree or a hand edit)."""
    parts = relpath.split("/")
    if (len(parts) != 3 or not parts[2].endswith(SUFFIX) or not is_type(parts[0])
            or not _SHARD_RE.fullmatch(parts[1])
            or not _STEM_RE.fullmatch(parts[2][:-len(SUFFIX)])):
        return None
    return parts[0], parts[2][:-len(SUFFIX)]


def _escape(ch: str) -> str:
    return "".join(f"_{byte:02x}" for byte in ch.encode("utf-8"))


def _unescape(match: re.Match[str]) -> str:
    hexes = match.group(0).replace("_", "")
    return bytes.fromhex(hexes).decode("utf-8", errors="surrogateescape")


def is_type(name: str) -> bool:
    """True if `name` is a valid type folder name."""
    return bool(_TYPE_RE.fullmatch(name)) and name not in _RESERVED
