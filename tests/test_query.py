"""Store.find's filters (gitpersist.query): keyword equality as always, and
a mapping with dotted paths and operators; indexes answer = and in."""

from __future__ import annotations

import operator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitpersist import ConfigError, Store


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "s", watch="off", fsync=False,
               indexes={"volumes": {"status": None, "backend": lambda d: d.get("host")}}) as s:
        s.put("volumes", "a", {"size": 1, "status": "available", "type": "ssd",
                               "meta": {"owner": "ops", "tier": 2}, "host": "h1"})
        s.put("volumes", "b", {"size": 10, "status": "in-use", "type": "hdd",
                               "meta": {"owner": "dev"}, "host": "h2"})
        s.put("volumes", "c", {"size": "big", "status": "error", "where": "x"})
        yield s


def ids(records):
    return [record["id"] for record in records]


def test_keyword_equality_as_before_and_a_field_called_type_or_where(store):
    assert ids(store.find("volumes", status="available")) == ["a"]
    assert ids(store.find("volumes", type="hdd")) == ["b"]
    assert ids(store.find("volumes", where="x")) == ["c"]
    assert ids(store.find("volumes", backend="h2")) == ["b"]        # a function index


def test_dotted_paths_reach_into_nested_objects(store):
    assert ids(store.find("volumes", **{"meta.owner": "ops"})) == ["a"]
    assert ids(store.find("volumes", {"meta.owner": "dev"})) == ["b"]
    assert ids(store.find("volumes", {"meta.tier >": 1})) == ["a"]


@pytest.mark.parametrize("where, expected", [
    ({"size >": 1}, ["b"]), ({"size >=": 1}, ["a", "b"]), ({"size <": 10}, ["a"]),
    ({"size <=": 10}, ["a", "b"]), ({"size !=": 1}, ["b", "c"]),
    ({"status in": ["in-use", "error"]}, ["b", "c"]),       # on an index
    ({"type in": ("ssd",)}, ["a"]), ({"size >": "a"}, ["c"]),
    ({"meta.owner !=": "ops"}, ["b"]),      # a missing field matches no operator
    ({"size >=": 1, "status": "in-use"}, ["b"]),
])
def test_operators(store, where, expected):
    assert ids(store.find("volumes", where)) == expected


def test_bad_filters_name_themselves(store):
    with pytest.raises(ConfigError, match="'status' in 'in-use': the operand of 'in'"):
        store.find("volumes", {"status in": "in-use"})
    with pytest.raises(ConfigError, match="must be a mapping"):
        store.find("volumes", ["size"])


def test_index_lookups_answer_without_reading_any_document(store, monkeypatch):
    from gitpersist import query
    monkeypatch.setattr(query.Condition, "matches", lambda self, doc: pytest.fail("scanned"))
    assert ids(store.find("volumes", {"status in": ["available", "error"]})) == ["a", "c"]
    assert ids(store.find("volumes", status="in-use")) == ["b"]


values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b"]))
documents = st.lists(st.fixed_dictionaries({}, optional={"x": values, "n": st.fixed_dictionaries(
    {}, optional={"y": values})}), max_size=6)
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def plain(document, name, op, value):
    """The rule written out plainly, for the property test."""
    found, present = document, True
    for part in name.split("."):
        if not isinstance(found, dict) or part not in found:
            found, present = None, False
            break
        found = found[part]
    if op == "=":
        return found == value
    if not present:
        return False
    if op == "!=":
        return found != value
    if op == "in":
        return found in value
    kinds = {type(found), type(value)}
    if not (kinds <= {int} or kinds == {str}):
        return False
    return OPS[op](found, value)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents, st.sampled_from(["x", "n.y"]),
       st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in"]), values)
def test_find_agrees_with_the_plain_rule(tmp_path_factory, docs, name, op, value):
    operand = [value, "a"] if op == "in" else value
    with Store(tmp_path_factory.mktemp("q"), watch="off", fsync=False) as store:
        for n, document in enumerate(docs):
            store.put("t", f"r{n}", document)
        key = name if op == "=" else f"{name} {op}"
        expected = [f"r{n}" for n, document in enumerate(docs)
                    if plain(document, name, op, operand)]
        assert ids(store.find("t", {key: operand})) == sorted(expected)
