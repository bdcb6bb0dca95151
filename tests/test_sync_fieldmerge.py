"""gitpersist.sync.fieldmerge: the three-way merge of a record, field by
field; first as a pure function, then between two hosts syncing through a
bare repository (the test_sync fixtures)."""

from __future__ import annotations

import hashlib
import time

import orjson
import pytest
from helpers import git
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sync import clone, open_host, share

from gitpersist import paths
from gitpersist.sync.fieldmerge import ABSENT, FieldMerge, merge3
from gitpersist.sync.merge import LOCAL, REMOTE, Both, LaterChangeWins

pytestmark = pytest.mark.usefixtures("no_git_identity")


@pytest.fixture
def origin(tmp_path):
    """An empty bare repository: the shared remote."""
    git(tmp_path, "init", "-q", "--bare", str(tmp_path / "remote.git"))
    return tmp_path / "remote.git"

# -- merge3, the pure rule ---------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b"]),
                    st.sampled_from([1.0, 0.0]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.sampled_from("xyz"), inner, max_size=3)),
    max_leaves=6)
documents = st.dictionaries(st.sampled_from(["status", "size", "metadata", "tags"]), values,
                            max_size=4)


def leaves(value, path=()):
    """path -> value of every non-object value (objects are walked into)."""
    if isinstance(value, dict) and value:
        out = {}
        for key, inner in value.items():
            out.update(leaves(inner, (*path, key)))
        return out
    return {path: value}


def at(document, path):
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return ABSENT
        document = document[key]
    return document


def same(a, b) -> bool:
    if a is ABSENT or b is ABSENT:
        return a is b
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=500, deadline=None)
@given(documents, documents, documents, st.sampled_from([LOCAL, REMOTE]))
def test_merge3_is_symmetric_and_keeps_every_change_of_one_side(base, local, remote, winner):
    merged, clashes = merge3(base, local, remote, winner)
    mirrored, mirrored_clashes = merge3(base, remote, local, REMOTE if winner == LOCAL else LOCAL)
    assert same(merged, mirrored)           # both hosts reach the same document
    assert [c.path for c in clashes] == [c.path for c in mirrored_clashes]
    clashed = {c.path for c in clashes}
    for side, other in ((local, remote), (remote, local)):
        for path, value in leaves(side).items():
            if not same(at(other, path), at(base, path)) or same(value, at(base, path)):
                continue
            # changed on this side only: kept, unless the field sits under a clash
            if not any(path[:len(c)] == c for c in clashed):
                assert same(at(merged, path), value), (path, merged)
    for clash in clashes:                       # a clash: both changed, differently
        assert not same(clash.local, clash.remote)
        assert not same(clash.local, clash.base) and not same(clash.remote, clash.base)
        assert same(at(merged, clash.path), clash.local if winner == LOCAL else clash.remote)


def test_fields_changed_on_different_sides_merge_with_no_conflict():
    base = {"id": "v1", "status": "creating", "metadata": {"a": "1", "b": "2"},
            "volume_type": {"extra_specs": {"x": "1"}}}
    local = {**base, "status": "available", "metadata": {"a": "1", "b": "2", "c": "3"}}
    remote = {**base, "metadata": {"a": "9", "b": "2"},
              "volume_type": {"extra_specs": {"x": "1", "y": "2"}}}
    merged, clashes = merge3(base, local, remote, LOCAL)
    assert clashes == []
    assert merged == {"id": "v1", "status": "available", "metadata": {"a": "9", "b": "2", "c": "3"},
                      "volume_type": {"extra_specs": {"x": "1", "y": "2"}}}


BASE = {"status": "creating", "tags": [1], "metadata": {"k": "b"}, "size": 2}


@pytest.mark.parametrize("local, remote, path", [
    ({**BASE, "tags": [1, 2]}, {**BASE, "tags": [1, 3]}, ("tags",)),     # lists are values
    ({**BASE, "status": "error"}, {**BASE, "status": "available"}, ("status",)),
    ({**BASE, "metadata": {"k": "l"}}, {**BASE, "metadata": {"k": "r"}}, ("metadata", "k")),
    ({**BASE, "metadata": "flat"}, {**BASE, "metadata": {"k": "r"}}, ("metadata",)),
    ({k: v for k, v in BASE.items() if k != "status"}, {**BASE, "status": "available"},
     ("status",)),                                                      # removed vs changed
    ({**BASE, "size": 1}, {**BASE, "size": True}, ("size",)),           # 1 is not true
])
def test_values_changed_on_both_sides_differently_are_a_conflict(local, remote, path):
    merged, [clash] = merge3(BASE, local, remote, REMOTE)
    assert clash.path == path
    assert same(at(merged, path), at(remote, path))
    merged, [clash] = merge3(BASE, local, remote, LOCAL)
    assert same(at(merged, path), at(local, path))


# -- FieldMerge over blobs -----------------------------------------------------------

class Blobs:
    def __init__(self, documents):
        self.store = {}
        self.ids = [None if d is None else self.write_blob(orjson.dumps(d)) for d in documents]

    def blobs(self, ids):
        return {id: self.store[id] for id in ids}

    def write_blob(self, data):
        id = hashlib.sha1(data).hexdigest()
        self.store[id] = data
        return id


def both_of(blobs, times=(1, 2)):
    relpath = paths.record_path("volumes", "v1")
    base, local, remote = ((0o100644, id) if id else None for id in blobs.ids)
    facts = {LOCAL: ("l" * 40, times[0]), REMOTE: ("r" * 40, times[1])}
    return Both("meta/" + relpath, relpath, base, local, remote, lambda side, path: facts[side],
                base_commit="b" * 40)


def test_an_edit_against_a_deletion_is_a_conflict_of_the_whole_record():
    blobs = Blobs([{"id": "v1", "s": 1}, None, {"id": "v1", "s": 2}])
    resolution = FieldMerge(blobs).resolve(both_of(blobs, times=(1, 2)))
    [conflict] = resolution.conflicts
    assert resolution.entry == (0o100644, blobs.ids[2])         # the later edit
    assert (conflict.field, conflict.winner, conflict.local_value, conflict.remote_value,
            conflict.base_value, conflict.base_commit) == (
        (), "remote", None, {"id": "v1", "s": 2}, {"id": "v1", "s": 1}, "b" * 40)
    later_delete = FieldMerge(blobs).resolve(both_of(blobs, times=(3, 2)))
    assert later_delete.entry is None and later_delete.conflicts[0].winner == "local"


def test_files_that_are_not_json_objects_go_to_the_whole_record_rule():
    blobs = Blobs([{"id": "v1"}, [1], {"id": "v1", "s": 2}])
    both = both_of(blobs)
    assert FieldMerge(blobs).resolve(both) is None
    assert LaterChangeWins().resolve(both).entry == both.remote


def test_a_field_conflict_reports_the_path_the_values_and_the_commits():
    blobs = Blobs([{"id": "v1", "metadata": {"k": "b"}}, {"id": "v1", "metadata": {"k": "l"}},
                   {"id": "v1", "metadata": {"k": "r"}}])
    resolution = FieldMerge(blobs).resolve(both_of(blobs))
    [conflict] = resolution.conflicts
    assert (conflict.field, conflict.base_value, conflict.local_value, conflict.remote_value) == (
        ("metadata", "k"), "b", "l", "r")
    assert (conflict.local_commit, conflict.remote_commit, conflict.winner) == (
        "l" * 40, "r" * 40, "remote")
    assert conflict.where == f"{paths.record_path('volumes', 'v1')}: metadata.k"
    assert orjson.loads(blobs.store[resolution.entry[1]]) == {"id": "v1", "metadata": {"k": "r"}}


# -- two hosts ----------------------------------------------------------------------

def test_two_hosts_changing_different_fields_of_a_record_keep_both(origin):
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating", "metadata": {"k": "1"}}})
        store_a.put("volumes", "v1", {"status": "available", "metadata": {"k": "1"}})
        store_b.put("volumes", "v1", {"status": "creating", "metadata": {"k": "1", "j": "2"}})
        store_a.sync()
        report = store_b.sync()
        store_a.sync()
        assert report.conflicts == []
        for store in (store_a, store_b):
            assert store.get("volumes", "v1") == {
                "id": "v1", "status": "available", "metadata": {"k": "1", "j": "2"}}
    assert git(a, "rev-parse", "HEAD^{tree}") == git(b, "rev-parse", "HEAD^{tree}")
    assert "0 conflict(s)" in git(b, "log", "-1", "--format=%B")


def test_merge_record_keeps_the_whole_record_rule(origin):
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a, merge="record") as store_a, open_host(b, merge="record") as store_b:
        share(store_a, store_b, {"v1": {"status": "creating", "metadata": {}}})
        store_a.put("volumes", "v1", {"status": "available", "metadata": {}})
        time.sleep(1.1)                             # b's change is the later one
        later = store_b.put("volumes", "v1", {"status": "creating", "metadata": {"j": "2"}})
        store_a.sync()
        [conflict] = store_b.sync().conflicts
        assert (conflict.field, conflict.winner, conflict.winner_revision) == ((), "local", later)
        assert store_b.get("volumes", "v1")["status"] == "creating"     # a's edit lost


def test_a_field_both_hosts_changed_goes_to_the_later_change_and_is_named(origin):
    a, b = clone(origin, "a"), clone(origin, "b")
    with open_host(a) as store_a, open_host(b) as store_b:
        share(store_a, store_b, {"v1": {"status": "creating", "size": 1}})
        store_a.put("volumes", "v1", {"status": "error", "size": 1})
        time.sleep(1.1)
        store_b.put("volumes", "v1", {"status": "available", "size": 2})
        store_a.sync()
        [conflict] = store_b.sync().conflicts
        assert (conflict.field, conflict.winner, conflict.base_value, conflict.local_value,
                conflict.remote_value) == (("status",), "local", "creating", "available", "error")
        store_a.sync()
        for store in (store_a, store_b):
            assert store.get("volumes", "v1") == {"id": "v1", "status": "available", "size": 2}
        message = git(b, "log", "-1", "--format=%B")
        assert f"{conflict.relpath}: status: kept local {conflict.winner_commit[:12]}" in message
        git(b, "merge-base", "--is-ancestor", conflict.loser_commit, "HEAD^2")
        assert conflict.base_commit == git(b, "merge-base", "HEAD^1", "HEAD^2").strip()
