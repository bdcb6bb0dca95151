"""gitpersist.update: the read-modify-write loop over a store."""

from __future__ import annotations

import pytest

from gitpersist import ConflictError, Store
from gitpersist.update import update


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s", watch="off") as store:
        yield store


def test_a_change_is_written_and_its_revision_returned(store):
    store.put("t", "a", {"n": 1})
    revision, written = update(store, "t", "a", lambda doc: {**doc, "n": doc["n"] + 1})
    assert written == {"id": "a", "n": 2}
    assert store.get("t", "a") == {"id": "a", "n": 2}
    assert revision == store.revision("t", "a")


def test_an_absent_record_is_created(store):
    revision, written = update(store, "t", "a", lambda doc: {"made": doc is None})
    assert store.get("t", "a") == {"id": "a", "made": True}
    assert revision == store.revision("t", "a")


def test_none_writes_nothing(store):
    assert update(store, "t", "a", lambda doc: None) == (None, None)
    assert store.get("t", "a") is None


def test_another_writer_first_means_a_retry_on_the_new_record(store):
    """The write that got in first is kept: the change is applied to it."""
    store.put("t", "a", {"n": 1, "by": []})
    seen = []

    def change(doc):
        seen.append(doc["n"])
        if len(seen) == 1:              # another writer, between read and write
            store.put("t", "a", {**doc, "n": 10, "by": ["other"]})
        return {**doc, "by": [*doc["by"], "me"]}
    update(store, "t", "a", change)
    assert seen == [1, 10]
    assert store.get("t", "a") == {"id": "a", "n": 10, "by": ["other", "me"]}


def test_a_record_created_meanwhile_is_not_overwritten(store):
    calls = []

    def change(doc):
        calls.append(doc)
        if doc is None:
            store.put("t", "a", {"by": "other"})
            return {"by": "me"}
        return None                     # it exists now: leave it
    assert update(store, "t", "a", change) == (None, None)
    assert calls == [None, {"id": "a", "by": "other"}]
    assert store.get("t", "a") == {"id": "a", "by": "other"}


def test_it_gives_up_after_the_attempts(store):
    store.put("t", "a", {"n": 0})
    calls = []

    def always_beaten(doc):
        calls.append(doc["n"])
        store.put("t", "a", {"n": doc["n"] + 1})
        return {"n": -1}
    with pytest.raises(ConflictError):
        update(store, "t", "a", always_beaten, attempts=3)
    assert calls == [0, 1, 2]
    assert store.get("t", "a") == {"id": "a", "n": 3}


def test_an_exception_of_the_change_propagates_nothing_written(store):
    store.put("t", "a", {"n": 1})

    def refuse(doc):
        raise LookupError("gone")
    with pytest.raises(LookupError):
        update(store, "t", "a", refuse)
    assert store.get("t", "a") == {"id": "a", "n": 1}


def test_the_revision_rule_of_secret_fields_is_the_stores(tmp_path):
    """The expected revision comes from the store (secret fields count)."""
    with Store(tmp_path / "s", watch="off", secret_fields={"t": ["key"]}) as store:
        store.put("t", "a", {"key": "k1", "n": 1})
        revision, _ = update(store, "t", "a", lambda doc: {**doc, "n": 2})
        assert store.get("t", "a") == {"id": "a", "key": "k1", "n": 2}
        assert revision == store.revision("t", "a")
