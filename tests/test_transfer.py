"""gitpersist.transfer: export and import of JSON documents over any store."""

from __future__ import annotations

import logging

import pytest

from gitpersist import Store, paths, transfer


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s", watch="off", secret_fields={"hosts": ["password"]}) as store:
        store.put("hosts", "h1", {"os": "debian", "password": "pw"})
        store.put("hosts", "h2", {"os": "alpine"})
        store.put("racks", "r1", {"row": 3})
        yield store


def break_record(store, type, id, content=b"{"):
    path = f"{store.root}/{paths.record_path(type, id)}"
    with open(path, "wb") as file:
        file.write(content)


def test_an_export_holds_every_record_and_the_secret_fields(store):
    document, skipped = transfer.export(store)
    assert skipped == 0
    assert document["gitpersist_export"] == transfer.EXPORT_VERSION
    assert document["types"] == {
        "hosts": [{"id": "h1", "os": "debian", "password": "pw"},
                  {"id": "h2", "os": "alpine"}],
        "racks": [{"id": "r1", "row": 3}]}
    assert document["secret_fields"] == {"hosts": ["password"]}
    assert transfer.is_export(document)
    assert transfer.read_export(document) == [
        ("hosts", "h1", {"id": "h1", "os": "debian", "password": "pw"}),
        ("hosts", "h2", {"id": "h2", "os": "alpine"}),
        ("racks", "r1", {"id": "r1", "row": 3})]


@pytest.mark.parametrize("silence", [
    lambda: logging.getLogger().setLevel(logging.ERROR),
    lambda: logging.getLogger("gitpersist").setLevel(logging.CRITICAL),
    lambda: logging.disable(logging.WARNING),
], ids=["root-at-error", "gitpersist-at-critical", "disabled"])
def test_corrupt_records_left_out_are_counted_whatever_the_logging(store, silence):
    """The count comes from the store, not from the warnings logged."""
    break_record(store, "hosts", "h2")
    break_record(store, "racks", "r1", b'{"id": "elsewhere"}')     # a misplaced record
    levels = {name: logging.getLogger(name).level for name in ("", "gitpersist")}
    try:
        silence()
        reopened = Store(store.root, watch="off")
        with reopened:
            document, skipped = transfer.export(reopened)
    finally:
        logging.disable(logging.NOTSET)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert skipped == 2
    assert document["types"] == {"hosts": [{"id": "h1", "os": "debian", "password": "pw"}]}


def test_what_is_not_an_export():
    assert not transfer.is_export({"types": {}})
    assert not transfer.is_export([{"gitpersist_export": 1}])
    with pytest.raises(transfer.TransferError, match="export version 2"):
        transfer.read_export({"gitpersist_export": 2, "format": 1, "types": {}})


def test_an_import_is_one_batch_and_counts_by_type(tmp_path, store):
    document, _ = transfer.export(store)
    with Store(tmp_path / "copy", watch="off",
               secret_fields=transfer.secret_fields_of(document, "x")) as copy:
        counts = transfer.import_export(copy, transfer.read_export(document))
        assert dict(counts) == {"hosts": 2, "racks": 1}
        assert transfer.export(copy)[0] == document
