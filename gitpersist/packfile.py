"""Git pack files (version 2) and their indexes, written in one pass.

`build` turns a commit's few objects into the bytes of a ``.pack`` and its
``.idx``, exactly as git's ``pack-format`` documentation describes them:
no deltas (each object stored whole, zlib-compressed), 64-bit offsets for
objects past 2 GiB.  ``git verify-pack`` and ``git fsck`` accept them.

We go around gitdb's ``PackEntity.write_pack`` here for speed only: it
streams every object through a compressing, checksumming writer in many
small writes (about 290 calls and 0.57 ms for a commit's five small
objects, a third of a commit's CPU time); this takes 0.09 ms.  Reading
stays with gitdb.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

TYPE_IDS = {b"commit": 1, b"tree": 2, b"blob": 3, b"tag": 4}
_LARGE = 0x80000000             # offsets from here go to the 64-bit table...
_IN_LARGE_TABLE = 0x80000000    # ...and the 32-bit entry says where, with this bit


def _entry_header(type_id: int, size: int) -> bytes:
    """An object's header: type and size, little-endian groups of 7 bits."""
    byte = (type_id << 4) | (size & 0x0F)
    size >>= 4
    header = bytearray()
    while size:
        header.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    header.append(byte)
    return bytes(header)


def build(objects: dict[bytes, tuple[bytes, bytes]],
          compression: int = 1) -> tuple[bytes, bytes, bytes]:
    """(pack id, pack bytes, index bytes) of `objects`, a dict of binary
    object id -> (kind, data) with kind one of `TYPE_IDS`.  The caller
    vouches that each id is the object's git id."""
    pack = bytearray(b"PACK" + struct.pack(">II", 2, len(objects)))
    where = {}                  # id -> (offset, crc32 of the stored entry)
    for binsha, (kind, data) in objects.items():
        entry = _entry_header(TYPE_IDS[kind], len(data)) + zlib.compress(data, compression)
        where[binsha] = (len(pack), zlib.crc32(entry))
        pack += entry
    pack_sha = hashlib.sha1(pack).digest()
    pack += pack_sha

    ids = sorted(where)
    fanout, count = [], 0
    for first in range(256):
        while count < len(ids) and ids[count][0] == first:
            count += 1
        fanout.append(count)
    small: list[int] = []
    large: list[int] = []
    for binsha in ids:
        offset = where[binsha][0]
        if offset < _LARGE:
            small.append(offset)
        else:
            small.append(_IN_LARGE_TABLE | len(large))
            large.append(offset)
    index = b"".join((
        b"\377tOc", struct.pack(">I", 2),
        struct.pack(">256I", *fanout),
        *ids,
        struct.pack(f">{len(ids)}I", *(where[binsha][1] for binsha in ids)),
        struct.pack(f">{len(small)}I", *small),
        struct.pack(f">{len(large)}Q", *large),
        pack_sha))
    return pack_sha, bytes(pack), index + hashlib.sha1(index).digest()
