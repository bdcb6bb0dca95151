"""cinderlib's ``storage="file"`` persistence plugin, on a gitpersist `Store`.

    cinderlib.setup(persistence_config={"storage": "file",
                                        "path": "/var/lib/cinderlib", "git": True})

The class or an instance works as ``storage`` too: ``{"storage":
FilePersistence, "path": ...}`` or ``{"storage": FilePersistence(path=...)}``.

Configuration (keys of ``persistence_config`` besides ``storage``; an
unknown key or a bad value raises `ConfigError` naming the key, at setup):

==============  ============  ================================================
key             default       meaning
==============  ============  ================================================
path            (required)    the store folder; created if absent
git             False         commit every change to git (the folder becomes
                              a repository, or lives in an existing one)
fsync           True          return from a write only once it is on disk
soft_deletes    False         keep deleted volumes, snapshots and connections,
                              marked deleted and hidden from reads (as
                              cinderlib's db plugin does)
watch           "native"      how other processes' changes reach the cache:
                              "native" (inotify and the like), "polling",
                              or "off" (one process only; also the choice
                              in eventlet-patched processes, where
                              watchdog's threads cannot run)
poll_interval   1.0           seconds between scans with watch="polling"
lock_timeout    30.0          seconds to wait for the store's write lock
author          None          git author, "Name <email>"; None: the
                              store's default identity
commit_mode     "sync"        "sync": a write returns after its commit;
                              "async": once its file is on disk, the commit
                              follows in the background (a crash loses no
                              change: the next open commits it)
commit_delay    0.2           seconds an "async" commit may wait to gather
                              more changes
file_mode       0o600         permissions of record files (int, or an octal
                              string such as "0640")
dir_mode        0o700         permissions of the store's folders
read_only       False         open an existing store for reading only:
                              no write lock, free space or writable file
                              system needed, writes refused
                              (``ReadOnlyStore``); picked with a warning
                              when the folder is not writable
local_secrets   True          keep each volume's ``provider_auth`` and each
                              connection's ``connection_info`` (their
                              credentials: CHAP passwords and the like) out
                              of the record file, in
                              ``.gitpersist/secrets/`` on this host only:
                              never committed, pushed or synced.  Recorded
                              in the store's format file on first use, and
                              from then on kept whatever this key says
                              (gitpersist.secret); False stores it in the
                              record, for a store that never had it True
object_cache    10000         how many records' built cinderlib objects to
                              keep (each read hands out a fresh copy of one,
                              see `gitpersist.cinder.objects`); 0: none,
                              every read builds its objects (a kept
                              volume costs about 12 KB)
==============  ============  ================================================

Sharing the store with other hosts through a git remote (needs ``git``;
see `gitpersist.sync` for what a sync does and how conflicts are decided;
`FilePersistence.sync` syncs at once):

=================  =======  ==============================================
key                default  meaning
=================  =======  ==============================================
remote             None     a git remote of the store's repository, such
                            as "origin"
sync_every         None     seconds between background syncs (None: none)
sync_on_open       False    sync once at setup (a failure is logged, and
                            setup goes on)
sync_after_commit  False    sync in the background after each commit
merge              "field"  a record both hosts changed: "field" merges it
                            field by field (a field both changed: the
                            later change), "record" keeps the later
                            change as a whole record
=================  =======  ==============================================

Guarantees:

* **The contract of cinderlib 5.2.0's plugins.**  Every test of cinderlib's
  own persistence test base passes; ``db`` is cinderlib's fake DB over this
  plugin, so drivers' volume type, QoS, admin metadata and
  ``volume_get_all_by_host`` calls work.
* **One readable file per resource.**  Volumes, snapshots, connections and
  key/values are records of the types ``volumes``, ``snapshots``,
  ``connections`` and ``key_values``.  A record holds the resource's own
  OVO fields under their OVO names, null fields left out, datetimes as
  ISO 8601 UTC strings.  It never holds copies of related records (a
  volume's snapshots and connections, a snapshot's volume are found by
  ``volume_id``).  A volume's type, which in cinderlib belongs to that one
  volume (its id and name are the volume type id), is kept inside the volume
  as ``"volume_type": {"extra_specs": {...}, "qos_specs": {...}}``.
* **No secrets from the backend configuration.**  Records name a volume's
  backend only through its ``host`` (``host@backend#pool``).
* **No credentials in git** (``local_secrets``, the default): a volume's
  ``provider_auth`` and a connection's ``connection_info`` live in side
  files on this host; the record files, which git commits and syncs, hold
  the other fields.  Another host reading a synced volume or connection sees
  it without them.
* **What a new process reads equals what the last one saved**, compared
  field by field (``dict(obj._ovo)``).  Reading needs no initialised
  Backend: objects of a backend this process has not loaded carry the
  backend's name, as with cinderlib's ``fail_on_missing_backend=False``.
* **Concurrent saves do not lose each other's changes.**  An object
  remembers the revision it was read or saved at.  Saving it writes its whole
  state if the record is still at that revision; otherwise (another object
  or process saved the record meanwhile) only the fields cinderlib tracked as
  changed are applied to the current record, as the db plugin's UPDATE does.
  Thread-safe, as the store is.
* **Every object a read returns is the caller's own**, and what it would
  be if built from the record now: changing it (nested dicts, its volume
  type, its snapshots list) changes nothing another caller or a later read
  sees; another process's save is read at the next read
  (`gitpersist.cinder.reads`).
* **A deleted record stays deleted.**  Saving an object whose record was
  deleted meanwhile (by another process, or soft-deleted) raises cinder's
  ``VolumeNotFound``/``SnapshotNotFound``/``VolumeAttachmentNotFound``, as
  the db plugin's UPDATE does; it never writes the record back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import missing_cinderlib
from .objects import CacheStats
from .reads import REVISION, ObjectReads
from .records import (changed_fields, datetime_text, merge, ovo_from_record, ovo_record,
                      volume_from_record, volume_record)
from .schema import (CONNECTIONS, INDEXES, KEY_VALUES, SECRET_FIELDS, SNAPSHOTS, TYPES,
                     VOLUMES, backend_of_host, describe)

try:
    from cinder import exception as cinder_exception
    from cinderlib import objects as cl_objects
    from cinderlib.persistence import base as persistence_base
    from oslo_utils import timeutils
except ImportError as exc:
    raise missing_cinderlib(exc) from exc

from .. import options
from ..errors import ConfigError, ConflictError
from ..store import ABSENT, Document, Store
from ..update import update

if TYPE_CHECKING:
    from ..sync import SyncReport

__all__ = [
    "CONNECTIONS", "FilePersistence", "INDEXES", "KEY_VALUES", "OPTIONS", "SECRET_FIELDS",
    "SNAPSHOTS", "TYPES", "VOLUMES", "backend_of_host", "ovo_from_record", "ovo_record",
    "parse_config", "volume_from_record", "volume_record",
]

# The plugin's logger keeps the name it had as gitpersist/plugin.py, so
# logging configured for it goes on working.
LOG = logging.getLogger("gitpersist.plugin")

# Its value (the attribute `REVISION` names) for an object stored (or
# deleted) at a revision not known: it never matches, so the next save
# merges, and fails if the record is gone.
_STORED = "stored"


# -- configuration -------------------------------------------------------------

def _path(label: str, value: Any) -> str:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise ConfigError(f"{label}: {value!r} is not a folder path")
    return os.fspath(value)


# key -> (default, check): the store's options (gitpersist.options) plus the
# plugin's own; the module docstring documents each.
OPTIONS: dict[str, tuple[Any, Callable[[str, Any], Any]]] = {
    "path": (None, _path),
    **{key: (options.DEFAULTS[key], check) for key, check in options.CHECKS.items()},
    "soft_deletes": (False, options.boolean),
    "local_secrets": (True, options.boolean),
}
_PLUGIN_KEYS = ("path", "soft_deletes", "local_secrets")


def parse_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every option, checked, with defaults filled in; `ConfigError` names
    the first unknown key or bad value."""
    unknown = sorted(set(config) - set(OPTIONS), key=str)
    if unknown:
        raise ConfigError(f"persistence_config {unknown[0]!r}: unknown key for "
                          f"storage 'file'; known keys: {', '.join(OPTIONS)}")
    if config.get("path") is None:
        raise ConfigError("persistence_config 'path': required for storage 'file' "
                          "(the store folder)")
    parsed = {key: OPTIONS[key][1](f"persistence_config {key!r}", config.get(key, OPTIONS[key][0]))
              for key in _PLUGIN_KEYS}
    store = options.parse({key: value for key, value in config.items()
                           if key not in _PLUGIN_KEYS},
                          label=lambda key: f"persistence_config {key!r}")
    return {**parsed, **dataclasses.asdict(store)}


# -- the plugin ----------------------------------------------------------------

# cinderlib has no type hints: its base class is Any to mypy
class FilePersistence(persistence_base.PersistenceDriverBase):  # type: ignore[misc]
    """cinderlib persistence in a gitpersist store (see the module docs).

    cinderlib calls these methods (its ``PersistenceDriverBase`` API): the
    ``get_*`` ones read, the ``set_*`` ones create or update a record, the
    ``delete_*`` ones remove it (or, with ``soft_deletes``, mark it
    deleted).  `store` is the `gitpersist.Store` underneath."""

    def __init__(self, **config: Any) -> None:
        """`config`: the keys of ``persistence_config`` but ``storage``
        (the module docs' table); a bad one raises `ConfigError` naming it."""
        settings = parse_config(config)
        self.soft_deletes: bool = settings.pop("soft_deletes")
        cache_size: int = settings.pop("object_cache")
        if settings.pop("local_secrets"):
            settings["secret_fields"] = SECRET_FIELDS
        self.store = Store(settings.pop("path"), indexes=INDEXES,
                           describe=describe, **settings)
        self.reads = ObjectReads(self.store, cache_size)
        self.fake_db = persistence_base.DB(self)
        super().__init__()

    @property
    def db(self) -> persistence_base.DB:
        """cinderlib's fake DB over this plugin, which drivers call."""
        return self.fake_db

    def close(self) -> None:
        """Close the store (pending commits land first)."""
        self.store.close()

    def sync(self) -> SyncReport:
        """Pull the other hosts' changes from the ``remote`` and push this
        host's (see `gitpersist.sync`); raises `SyncError` naming the remote."""
        return self.store.sync()

    def __repr__(self) -> str:
        return f"<gitpersist.plugin.FilePersistence {self.store.root}>"

    # -- reading ---------------------------------------------------------------

    def get_volumes(self, volume_id: str | None = None, volume_name: str | None = None,
                    backend_name: str | None = None) -> list[cl_objects.Volume]:
        """The volumes (cinderlib ``Volume`` objects) with this id, name
        and backend (each None: any), with their snapshots and connections."""
        return self.reads.find(VOLUMES, volume_id, {"display_name": volume_name,
                                                    "backend": backend_name})

    def get_snapshots(self, snapshot_id: str | None = None, snapshot_name: str | None = None,
                      volume_id: str | None = None) -> list[cl_objects.Snapshot]:
        """The snapshots with this id, name and volume (each None: any)."""
        return self.reads.find(SNAPSHOTS, snapshot_id, {"display_name": snapshot_name,
                                                        "volume_id": volume_id})

    def get_connections(self, connection_id: str | None = None,
                        volume_id: str | None = None) -> list[cl_objects.Connection]:
        """The connections with this id and volume (each None: any)."""
        return self.reads.find(CONNECTIONS, connection_id, {"volume_id": volume_id})

    def get_key_values(self, key: str | None = None) -> list[cl_objects.KeyValue]:
        """The key/value pairs, or the one of `key`."""
        if key:
            doc = self.store.get(KEY_VALUES, key)
            docs = [] if doc is None else [doc]
        else:
            docs = self.store.all(KEY_VALUES)
        return [cl_objects.KeyValue(doc["id"], doc.get("value")) for doc in docs]

    def stats(self) -> CacheStats:
        """The object cache's figures: templates kept, the bound
        (``object_cache``), hits, misses, the hit ratio."""
        return self.reads.cache.stats()

    # -- writing ---------------------------------------------------------------

    def set_volume(self, volume: cl_objects.Volume) -> None:
        """Create or update the volume's record (a merge of the fields
        cinderlib changed, if another process wrote it since it was read)."""
        self._save(VOLUMES, volume, volume_record(volume._ovo))
        super().set_volume(volume)

    def set_snapshot(self, snapshot: cl_objects.Snapshot) -> None:
        """Create or update the snapshot's record (as `set_volume`)."""
        self._save(SNAPSHOTS, snapshot, ovo_record(snapshot._ovo))
        super().set_snapshot(snapshot)

    def set_connection(self, connection: cl_objects.Connection) -> None:
        """Create or update the connection's record (as `set_volume`)."""
        self._save(CONNECTIONS, connection, ovo_record(connection._ovo))
        super().set_connection(connection)

    def set_key_value(self, key_value: cl_objects.KeyValue) -> None:
        """Store the key/value pair."""
        self.store.put(KEY_VALUES, key_value.key, {"value": key_value.value})
        super().set_key_value(key_value)

    def delete_volume(self, volume: cl_objects.Volume) -> None:
        """Remove the volume's record (with ``soft_deletes``: mark it deleted)."""
        self._delete(VOLUMES, volume, {"status": "deleted"})
        super().delete_volume(volume)

    def delete_snapshot(self, snapshot: cl_objects.Snapshot) -> None:
        """Remove the snapshot's record (with ``soft_deletes``: mark it deleted)."""
        self._delete(SNAPSHOTS, snapshot, {"status": "deleted"})
        super().delete_snapshot(snapshot)

    def delete_connection(self, connection: cl_objects.Connection) -> None:
        """Remove the connection's record (with ``soft_deletes``: mark it deleted)."""
        self._delete(CONNECTIONS, connection, {"attach_status": "deleted"})
        super().delete_connection(connection)

    def delete_key_value(self, key_value: cl_objects.KeyValue) -> None:
        """Remove the key/value pair."""
        self.store.delete(KEY_VALUES, key_value.key)
        super().delete_key_value(key_value)

    def _save(self, type: str, resource: Any, doc: Document) -> None:
        """Store `doc`, the whole state of `resource`, if the record is still
        at the revision `resource` was read or saved at (or absent, for a
        new object).  Otherwise apply only the fields cinderlib tracked as
        changed to the current record, like the db plugin's UPDATE, which
        raises cinder's NotFound if the record was deleted meanwhile (also
        soft-deleted): a stale object never brings a deleted one back."""
        base = getattr(resource, REVISION, None)
        try:
            revision = self.store.put(type, resource.id, doc, expect=base or ABSENT)
        except ConflictError:
            pass
        else:
            setattr(resource, REVISION, revision)
            self.reads.saved(type, resource.id, revision, doc)
            return
        changed = changed_fields(resource)

        def apply(current: Document | None) -> Document:
            if current is None or current.get("deleted"):
                raise _not_found(type, resource.id)
            return merge(current, doc, changed)
        merged_revision, merged = update(self.store, type, resource.id, apply)
        # Once the record differs from the object, later saves merge too.
        setattr(resource, REVISION, merged_revision if merged == doc else _STORED)
        if merged_revision is not None and merged is not None:
            self.reads.saved(type, resource.id, merged_revision, merged)

    def _delete(self, type: str, resource: Any, status: Document) -> None:
        """Remove the record, or with soft_deletes mark it deleted (the
        fields the db plugin's soft delete sets)."""
        if self.soft_deletes:
            marks = {"deleted": True, "deleted_at": datetime_text(timeutils.utcnow()),
                     **status}
            update(self.store, type, resource.id, lambda current: None
                   if current is None or current.get("deleted")
                   else {**current, **marks})
        else:
            self.store.delete(type, resource.id)
        setattr(resource, REVISION, _STORED)


def _not_found(type: str, id: str) -> Exception:
    """What cinder's DB API raises when a row to update is not there."""
    error: Exception
    if type == VOLUMES:
        error = cinder_exception.VolumeNotFound(volume_id=id)
    elif type == SNAPSHOTS:
        error = cinder_exception.SnapshotNotFound(snapshot_id=id)
    else:
        error = cinder_exception.VolumeAttachmentNotFound(filter=f"attachment_id = {id}")
    return error
