"""cinderlib's records in a gitpersist store: their types, indexes, secret
fields, the references between them, and what a commit says of a change.

Plain data and small functions only: importing this module loads neither
cinderlib nor cinder nor oslo (`gitpersist.fsck` and the CLI use it on
machines without the cinderlib stack).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..messages import Document, describe_change

VOLUMES, SNAPSHOTS, CONNECTIONS, KEY_VALUES = (
    "volumes", "snapshots", "connections", "key_values")
TYPES = (VOLUMES, SNAPSHOTS, CONNECTIONS, KEY_VALUES)


def backend_of_host(host: str | None) -> str | None:
    """The backend name in a volume's host, ``host@backend#pool``."""
    return host.split("@")[-1].split("#")[0] if host else None


# The store's indexes (`Store(indexes=...)`): field name -> None (the field
# itself) or a key function.
INDEXES: dict[str, dict[str, Callable[[Document], Any] | None]] = {
    VOLUMES: {"display_name": None,
              "backend": lambda doc: backend_of_host(doc.get("host"))},
    SNAPSHOTS: {"volume_id": None, "display_name": None},
    CONNECTIONS: {"volume_id": None},
}

# Fields that carry credentials, kept on this host (``local_secrets``): a
# volume's ``provider_auth`` is cinder's "CHAP <user> <password>" for iSCSI
# targets; a connection's ``connection_info`` repeats them for the initiator.
SECRET_FIELDS: dict[str, list[str]] = {VOLUMES: ["provider_auth"],
                                       CONNECTIONS: ["connection_info"]}

# Fields that name another record: (type, field) -> referenced type.
REFERENCES: Mapping[tuple[str, str], str] = MappingProxyType({
    (SNAPSHOTS, "volume_id"): VOLUMES,
    (CONNECTIONS, "volume_id"): VOLUMES,
})


def is_soft_deleted(document: Mapping[str, Any]) -> bool:
    """A record the plugin's ``soft_deletes`` kept, marked deleted."""
    return document.get("deleted") is True


class ReferenceRules:
    """cinderlib's references, as `gitpersist.fsck.check` takes them
    (``rules=RULES``): a live snapshot's and connection's ``volume_id``
    name a live volume; soft-deleted records name nothing and are named by
    none (a live snapshot of a soft-deleted volume dangles)."""

    references: Mapping[tuple[str, str], str] = REFERENCES

    @staticmethod
    def live(document: Mapping[str, Any]) -> bool:
        return not is_soft_deleted(document)


RULES = ReferenceRules()

_NOUNS = {VOLUMES: "volume", SNAPSHOTS: "snapshot", CONNECTIONS: "connection",
          KEY_VALUES: "key"}


def describe(type: str, id: str, old: Document | None, new: Document | None) -> str:
    """Commit message: ``volume <id> (<name>): status creating -> available``
    (`Store(describe=...)`)."""
    return describe_change(_NOUNS.get(type, type), id, old, new)
