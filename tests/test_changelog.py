"""gitpersist.changelog: readers see every line, whole, once; a new log forgets all."""

from __future__ import annotations

import pytest

from gitpersist.changelog import HEADER, HEADER_SIZE, ChangeLog
from gitpersist.records import RecordFiles, open_store_folder


@pytest.fixture
def files(tmp_path):
    open_store_folder(str(tmp_path), 0o700)
    return RecordFiles(str(tmp_path), fsync=False, file_mode=0o600, dir_mode=0o700)


def log(files) -> ChangeLog:
    opened = ChangeLog(files)
    opened.open()
    return opened


def test_a_reader_sees_what_was_written_after_it_opened(files):
    writer = log(files)
    writer.wrote("volumes/ab/old.json", "r0")           # before the reader: on disk already
    reader = log(files)
    assert reader.news() == []
    writer.wrote("volumes/ab/a.json", "r1")
    writer.wrote("volumes/ab/b.json", None)
    assert reader.news() == [("volumes/ab/a.json", "r1"), ("volumes/ab/b.json", None)]
    assert reader.news() == []
    reader.close()                                      # a closed store still reads
    writer.wrote("volumes/ab/c.json", "r2")
    assert reader.news() == [("volumes/ab/c.json", "r2")]


def test_a_partial_line_waits_for_its_end(files):
    writer, reader = log(files), log(files)
    with open(writer.path, "ab") as file:
        file.write(b"r1 volumes/ab/a.js")
    assert reader.news() == []
    with open(writer.path, "ab") as file:
        file.write(b"on\n")
    assert reader.news() == [("volumes/ab/a.json", "r1")]


def test_a_full_log_starts_again_and_readers_forget_everything(files, monkeypatch):
    writer, reader = log(files), log(files)
    monkeypatch.setattr(ChangeLog, "MAX_SIZE", 64)
    for n in range(3):
        writer.wrote(f"volumes/ab/{n}.json", "r" * 20)
    assert reader.news() is None            # a new file: anything may have changed
    writer.wrote("volumes/ab/x.json", "r")
    assert reader.news() == [("volumes/ab/x.json", "r")]
    with open(writer.path, "rb") as file:
        data = file.read()
    assert len(data) <= 64 + HEADER_SIZE and data.startswith(HEADER.encode())   # a new id


def test_header_lines_are_skipped_wherever_they_are(files):
    """Two processes making the log at once may put the header after a
    line: readers skip it."""
    writer, reader = log(files), log(files)
    with open(writer.path, "ab") as file:
        file.write(HEADER.encode() + b"0123abcd\n")
    writer.wrote("volumes/ab/y.json", "r")
    assert reader.news() == [("volumes/ab/y.json", "r")]
