"""gitpersist.cache: what listeners hear; indexes stay right as records change."""

from __future__ import annotations

import pytest

from gitpersist import Store, paths


class Heard:
    def __init__(self):
        self.events = []

    def stored(self, type, id, revision):
        self.events.append(("stored", type, id))

    def removed(self, type, id):
        self.events.append(("removed", type, id))

    def invalidated(self, type):
        self.events.append(("invalidated", type))


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path, watch="off", indexes={"volumes": {"host": None}}) as store:
        yield store


def listen(store) -> Heard:
    heard = Heard()
    store.subscribe(heard)
    return heard


def test_listeners_hear_writes_reads_and_invalidations(store, tmp_path):
    heard = listen(store)
    store.put("volumes", "v1", {"host": "a"})
    store.delete("volumes", "v1")
    store.delete("volumes", "never")            # nothing cached: nothing to hear
    other = Store(tmp_path, watch="off")
    other.put("volumes", "v2", {})
    other.close()
    assert store.get("volumes", "v2") == {"id": "v2"}      # read from disk: learned
    store.changed("volumes/")
    store.get("volumes", "v2")
    assert heard.events == [("stored", "volumes", "v1"), ("removed", "volumes", "v1"),
                            ("stored", "volumes", "v2"), ("invalidated", "volumes"),
                            ("stored", "volumes", "v2")]


def test_a_changed_file_is_read_again_and_reindexed(store, tmp_path):
    store.put("volumes", "v1", {"host": "a"})
    assert [d["id"] for d in store.find("volumes", host="a")] == ["v1"]
    (tmp_path / paths.record_path("volumes", "v1")).write_text('{"id": "v1", "host": "b"}')
    assert [d["id"] for d in store.find("volumes", host="a")] == ["v1"]    # a hand edit: not told
    store.changed(paths.record_path("volumes", "v1"))
    assert store.find("volumes", host="a") == []
    assert [d["id"] for d in store.find("volumes", host="b")] == ["v1"]


def test_unhashable_index_values_are_found(store):
    store.put("volumes", "v1", {"host": {"name": "a", "pool": [1, 2]}})
    assert [d["id"] for d in store.find("volumes", host={"pool": [1, 2], "name": "a"})] == ["v1"]


def test_a_filter_value_json_cannot_hold_finds_nothing(store):
    """Indexed or not, the same answer (an indexed one raised a TypeError)."""
    store.put("volumes", "v", {"host": "a"})
    assert store.find("volumes", size={1, 2}) == []
    assert store.find("volumes", host={1, 2}) == []
