"""gitpersist.codec: the one revision rule, and the split it is built on."""

import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitpersist import InvalidDocument
from gitpersist.codec import Codec

FIELDS = {"connections": frozenset({"connection_info"})}
values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(),
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
documents = st.dictionaries(st.sampled_from(["a", "b", "connection_info", "volume_id"]), values)


def test_a_plain_revision_is_the_files_git_blob_id(tmp_path):
    record = Codec().prepare("volumes", "v1", {"size": 1})
    (tmp_path / "f").write_bytes(record.public_data)
    blob = subprocess.run(["git", "hash-object", str(tmp_path / "f")], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert record.revision == record.public_revision == blob
    assert record.hidden == {} and record.data == record.public_data


@given(documents)
def test_prepare_and_revision_of_agree(document):
    codec = Codec(FIELDS, b"k" * 64)
    record = codec.prepare("connections", "c1", document)
    assert codec.revision_of("connections", record.document) == record.revision
    assert "connection_info" not in record.public
    assert record.document == {**record.public, **record.hidden}
    assert (record.revision == record.public_revision) == (not record.hidden)


@given(documents, values)
def test_a_secret_alone_changes_the_revision_and_the_key_hides_it(document, secret):
    document = {**document, "connection_info": {"password": "one"}}
    one, other = Codec(FIELDS, b"1" * 64), Codec(FIELDS, b"2" * 64)
    before = one.prepare("connections", "c1", document)
    after = one.prepare("connections", "c1", {**document, "connection_info": {"password": "two"}})
    assert before.public_data == after.public_data and before.revision != after.revision
    assert other.prepare("connections", "c1", document).revision != before.revision


@pytest.mark.parametrize("document, message", [
    ([1], "a document is a mapping"), ({"id": "v2"}, "document has id 'v2'"),
    ({"x": float("nan")}, "x"),
])
def test_bad_documents_are_refused_naming_the_record(document, message):
    with pytest.raises(InvalidDocument, match=f"volumes 'v1': .*{message}"):
        Codec().prepare("volumes", "v1", document)
