"""Id encoding: reversible, injective, case-safe, never leaves the type folder."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitpersist import Store, paths

# Any string a caller might use as an id, minus the ones we refuse
# (empty, lone surrogates), plus the nasty ones spelled out.
ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300) | st.sampled_from([
    ".", "..", "../x", "/etc/passwd", "a\\b", "\x00", "a\nb", ".git", "CON", "con", "nul.txt",
    "com1", "LPT9", "x" * 5000, "ü" * 2000, "\U0001f600", "A", "a", "_41", "~", "a~b",
])
SAFE = set("abcdefghijklmnopqrstuvwxyz0123456789-_~")


@given(ids)
def test_encoding_is_safe_and_reversible(id):
    stem = paths.encode_id(id)
    assert set(stem) <= SAFE
    assert stem not in ("", ".", "..") and len(stem) <= paths.MAX_STEM
    assert stem.split(".")[0] not in {"con", "prn", "aux", "nul", "com1", "lpt9"}
    decoded = paths.decode_id(stem)
    assert decoded == id or (decoded is None and "~" in stem)
    relpath = paths.record_path("volumes", id)
    assert relpath.count("/") == 2 and relpath.startswith("volumes/")


@given(ids, ids)
def test_distinct_ids_distinct_names_even_ignoring_case(a, b):
    if a != b:
        assert paths.encode_id(a).lower() != paths.encode_id(b).lower()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(ids, min_size=1, max_size=5, unique=True))
def test_any_id_round_trips_through_the_store(tmp_path_factory, id_list):
    root = tmp_path_factory.mktemp("store")
    with Store(root, watch="off") as store:
        for n, id in enumerate(id_list):
            store.put("volumes", id, {"n": n})
    with Store(root, watch="off") as store:            # fresh cache: from disk
        assert sorted(d["id"] for d in store.all("volumes")) == sorted(id_list)
        for n, id in enumerate(id_list):
            assert store.get("volumes", id) == {"id": id, "n": n}
    for folder, _, names in os.walk(root):
        rel = os.path.relpath(folder, root)
        assert rel == "." or rel.split(os.sep)[0] in ("volumes", ".gitpersist")
        assert all(len(name.encode()) <= 255 for name in names)


@settings(deadline=None)     # a loaded machine: 250 ms for a 1,000-character id
@given(ids, ids)
def test_is_path_of_says_what_record_path_says(a, b):
    """The fast check of the snapshot's rows agrees with `record_path`."""
    for id in (a, b, "con", "a" * 200, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"):
        assert paths.is_path_of(paths.record_path("volumes", id), "volumes", id)
    assert paths.is_path_of(paths.record_path("volumes", a), "volumes", b) == (a == b)
    assert paths.is_record_name(paths.record_path("volumes", a).rsplit("/", 1)[1])


def test_uuid_stays_readable():
    uuid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    assert paths.encode_id(uuid) == uuid


def test_long_ids_use_a_hashed_name_and_read_back():
    long_a, long_b = "x" * 5000, "x" * 4999 + "y"
    assert paths.encode_id(long_a) != paths.encode_id(long_b)
    assert paths.decode_id(paths.encode_id(long_a)) is None


@given(ids)
def test_every_record_path_is_recognised_as_one(id):
    relpath = paths.record_path("volumes", id)
    assert paths.split_record_path(relpath) == ("volumes", relpath.split("/")[2][:-5])


def test_paths_no_encoding_makes_are_not_record_paths():
    """What a remote tree or a hand edit may hold: never taken for a record
    (a sync would write `volumes/../x.json` at the store root)."""
    for relpath in ("volumes/../x.json", "volumes/./x.json", "../ab/x.json", "volumes/ab/.json",
                    "volumes/ab/.x.json", "volumes/ab/X.json", "volumes/abc/x.json",
                    "volumes/zz/x.json", "con/ab/x.json", "volumes/ab/a.b.json",
                    "volumes/ab/x.json/y", "volumes/ab/x.txt", ".gitpersist/ab/x.json"):
        assert paths.split_record_path(relpath) is None, relpath
