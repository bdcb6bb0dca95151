"""gitpersist.sidefiles: every state a crash can leave reads back whole."""

from __future__ import annotations

import contextlib

import pytest

from gitpersist.codec import Codec
from gitpersist.layout import side_path
from gitpersist.reader import Reader
from gitpersist.records import RecordFiles, open_store_folder
from gitpersist.sidefiles import SideFiles

FIELDS = {"connections": frozenset({"connection_info"})}


@pytest.fixture
def parts(tmp_path):
    open_store_folder(str(tmp_path), 0o700)
    files = RecordFiles(str(tmp_path), fsync=False, file_mode=0o600, dir_mode=0o700)
    codec = Codec(FIELDS, b"k" * 64)
    sides = SideFiles(files, codec)
    return files, codec, sides, Reader(files, sides, codec)


def write(parts, document, stop_after=3):
    """A put, step by step, stopped (a crash) after step `stop_after`."""
    files, codec, sides, reader = parts
    record = codec.prepare("connections", "c1", document)
    now = reader.current(record.relpath)
    kept = sides.stage(record, now.side, now.public_revision)
    if stop_after >= 2:
        files.write(record.relpath, record.public_data)
    if stop_after >= 3:
        sides.settle(record, kept)
    return record


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_a_crash_at_any_step_reads_old_or_new_whole(parts, stop_after):
    old = write(parts, {"connection_info": {"password": "old"}, "n": 1})
    new = write(parts, {"connection_info": {"password": "new"}, "n": 2}, stop_after)
    entry = parts[3].read(old.relpath)
    assert entry.document == (old if stop_after == 1 else new).document
    assert entry.revision == (old if stop_after == 1 else new).revision


def test_settle_drops_the_previous_secrets_and_a_record_without_secrets_its_side_file(parts):
    files, codec, sides, reader = parts
    write(parts, {"connection_info": {"password": "old"}})
    record = write(parts, {"connection_info": {"password": "new"}})
    assert b"old" not in files.read(side_path(record.relpath))[0]
    write(parts, {"n": 3})
    assert not files.exists(side_path(record.relpath))
    assert reader.read(record.relpath).document == {"id": "c1", "n": 3}


def test_sweep_removes_side_files_whose_record_is_gone(parts):
    files, codec, sides, reader = parts
    record = write(parts, {"connection_info": {"password": "x"}})
    files.remove(record.relpath)        # a deletion stopped between its two files
    sides.sweep(contextlib.nullcontext)
    assert not files.exists(side_path(record.relpath))
    write(parts, {"n": 1})              # made again under that id: no inherited secret
    assert reader.read(record.relpath).document == {"id": "c1", "n": 1}
