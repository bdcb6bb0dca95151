"""gitpersist.formatfile: only a real format file is accepted; declarations only grow."""

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitpersist import FormatError, formatfile


@pytest.mark.parametrize("data, reason", [
    (b"{ torn", "not JSON"), (b"[1, 2]", "not a gitpersist format file"),
    (b'{"id": "gitpersist"}', "not a gitpersist format file"),
    (b'{"format": 99}', "newer than this gitpersist"), (b'{"format": "1"}', "not a format version"),
    (b'{"format": true}', "not a format version"), (b'{"format": 0}', "not a format version"),
    (b'{"format": 1, "secret_fields": {"volumes": 5}}', "secret_fields"),
    (b'{"format": 1, "secret_fields": {"../x": ["a"]}}', "secret_fields"),
    (b'{"format": 1, "secret_fields": ["volumes"]}', "secret_fields"),
])
def test_anything_but_a_format_file_is_refused_naming_it(data, reason):
    with pytest.raises(FormatError, match=f"^/s/format.json: .*{reason}"):
        formatfile.parse(data, "/s/format.json")


def test_render_keeps_what_is_declared_and_adds():
    data = formatfile.render({}, {"volumes": frozenset({"a"})})
    document = formatfile.parse(data)
    assert document["secret_fields"] == {"volumes": ["a"]}
    again = formatfile.parse(formatfile.render(document, {"volumes": frozenset({"b"}),
                                                          "connections": frozenset({"c"})}))
    assert again["secret_fields"] == {"connections": ["c"], "volumes": ["a", "b"]}


fields = st.dictionaries(st.sampled_from(["volumes", "snapshots", "connections"]),
                         st.frozensets(st.sampled_from(["a", "b", "c"]), min_size=1))


@given(fields, fields)
def test_a_merge_declares_every_field_either_side_declares(mine, theirs):
    merged = orjson.loads(formatfile.merge(formatfile.render({}, mine),
                                           formatfile.render({}, theirs)))
    for side in (mine, theirs):
        for type, names in side.items():
            assert names <= set(merged["secret_fields"][type])
    assert formatfile.merge(formatfile.render({}, theirs), formatfile.render({}, mine)) \
        == formatfile.merge(formatfile.render({}, mine), formatfile.render({}, theirs))
