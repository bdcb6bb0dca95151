"""gitpersist.cinder.schema: cinderlib's record types, indexes, secret
fields, reference rules and commit messages, with no cinderlib stack."""

from __future__ import annotations

import pytest

from gitpersist import Store
from gitpersist.cinder import schema


@pytest.mark.parametrize("host, backend", [
    ("node1@lvm#pool", "lvm"),
    ("node1@lvm", "lvm"),
    ("", None),
    (None, None),
])
def test_backend_of_host(host, backend):
    assert schema.backend_of_host(host) == backend


def test_a_store_with_the_indexes_finds_volumes_by_backend(tmp_path):
    with Store(tmp_path / "s", watch="off", indexes=schema.INDEXES) as store:
        store.put(schema.VOLUMES, "v1", {"host": "h@lvm#p", "display_name": "a"})
        store.put(schema.VOLUMES, "v2", {"host": "h@ceph#p", "display_name": "a"})
        store.put(schema.VOLUMES, "v3", {"display_name": "b"})     # no host
        assert [d["id"] for d in store.find(schema.VOLUMES, backend="lvm")] == ["v1"]
        assert [d["id"] for d in store.find(schema.VOLUMES, display_name="a")] == [
            "v1", "v2"]


def test_the_secret_fields_are_the_credentials():
    assert schema.SECRET_FIELDS == {"volumes": ["provider_auth"],
                                    "connections": ["connection_info"]}


def test_reference_rules():
    assert dict(schema.RULES.references) == {("snapshots", "volume_id"): "volumes",
                                             ("connections", "volume_id"): "volumes"}
    assert schema.RULES.live({"id": "v"})
    assert schema.RULES.live({"id": "v", "deleted": False})
    assert not schema.RULES.live({"id": "v", "deleted": True})


@pytest.mark.parametrize("type, old, new, message", [
    ("volumes", None, {"display_name": "data"}, "volume v1 (data): created"),
    ("snapshots", {"status": "a"}, {"status": "b"}, "snapshot v1: status a -> b"),
    ("connections", {}, None, "connection v1: deleted"),
    ("key_values", None, {"value": "x"}, "key v1: created"),
    ("hosts", None, {}, "hosts v1: created"),       # another type: its own name
])
def test_commit_messages_name_the_resource(type, old, new, message):
    assert schema.describe(type, "v1", old, new) == message


def test_schema_fsck_and_the_cli_import_without_the_cinderlib_stack(python_without):
    done = python_without("""
        import sys
        import gitpersist.cinder.schema, gitpersist.fsck, gitpersist.cli
        import gitpersist.transfer, gitpersist.cinder.migrate
        loaded = sorted(name for name in sys.modules
                        if name.split(".")[0] in ("cinderlib", "cinder")
                        or name.startswith("oslo"))
        print(loaded)
    """)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")
