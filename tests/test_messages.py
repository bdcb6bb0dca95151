"""gitpersist.messages: commit messages never carry a record's control characters."""

from hypothesis import given
from hypothesis import strategies as st

from gitpersist.messages import clean_message, describe_change, printable


def test_describe_names_the_record_and_what_changed():
    assert describe_change("volumes", "v1", None, {"id": "v1"}) == "volumes v1: created"
    assert describe_change("volumes", "v1", {"id": "v1"}, None) == "volumes v1: deleted"
    assert describe_change("volumes", "v1", {"status": "creating", "display_name": "data"},
                           {"status": "available", "display_name": "data"}) \
        == "volumes v1 (data): status creating -> available"
    assert describe_change("volumes", "v1", {"a": 1}, {"a": 1}) == "volumes v1: rewritten unchanged"
    many = describe_change("t", "x", {}, {"a": 1, "b": {}, "c": 3, "d": 4})
    assert many == "t x: a none -> 1, b changed, c none -> 3, and 1 more fields"


@given(st.text(), st.text(), st.text())
def test_a_message_is_one_printable_line(id, name, key):
    message = describe_change("volumes", id or "x", {"name": name, key: 1},
                              {"name": name, key: "\n\x1b[31m"})
    assert "\n" not in message and "\x1b" not in message


@given(st.text())
def test_printable_escapes_only_control_characters(text):
    shown = printable(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


def test_clean_message_is_gits_cleanup():
    assert clean_message("subject  \n\n\nbody\0 \n\n") == "subject\n\n\nbody\\0\n"
    assert clean_message("") == "gitpersist: update\n"
