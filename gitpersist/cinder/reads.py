"""The plugin's reads: cinderlib objects from records, built once per record
version and handed out as clones (`gitpersist.cinder.objects`).

A read asks the store which records match and at which revisions (one
call, validated as every store read is: the change log, the watcher's
events, the file checks of ``watch="off"``), takes the template of each
record at that revision from the object cache or builds it from the
record, and clones it.  A volume's snapshots and connections are the
clones of their own records' templates, put into the volume's clone as
cinderlib's constructors would (so saving a snapshot does not make its
volume's template stale).  A save builds the template of what it stored
(`ObjectReads.saved`): the first read after it is a clone too.

Guarantees (tests: ``tests/test_plugin_reads.py``): a read returns what
the plain build from the record (oslo's fields, cinderlib's constructors)
returns, field by field and object by object; every object it returns is
the caller's own; a save by another process is read at the next read;
records cinderlib cannot read raise `CorruptRecord` when asked for by id
and are skipped with that warning in listings.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

import orjson

from . import missing_cinderlib
from ..cache import gc_paused
from .objects import ObjectCache, Template
from .records import ovo_from_record, reset_changes, volume_from_record
from .schema import CONNECTIONS, INDEXES, SNAPSHOTS, VOLUMES, backend_of_host

try:
    import cinderlib
    from cinder import objects as cinder_objs
    from cinderlib import objects as cl_objects
except ImportError as exc:
    raise missing_cinderlib(exc) from exc

from .. import paths
from ..errors import CorruptRecord
from ..store import Document, Store

LOG = logging.getLogger("gitpersist.plugin")

# The attribute of a cinderlib object holding the record revision its state
# was read or saved at (see `FilePersistence._save`).
REVISION = "_gitpersist_revision"

# Above this many volumes in an answer, their snapshots and connections are
# found by listing each type once, not by one index lookup per volume.
_PER_VOLUME = 8


class NamedBackend:
    """Stands in for a Backend this process has not loaded while a cinderlib
    object is built: cinderlib's objects only ask it for its name (`id`).
    (cinderlib looks names up and, with its default
    ``fail_on_missing_backend=True``, refuses unknown ones; the object then
    gets the backend's name, as it would with that option off.)"""

    def __init__(self, name: str | None) -> None:
        self.id = name


def _backend(name: str | None) -> Any:
    return cinderlib.Backend.backends.get(name) if name else None


@dataclasses.dataclass(frozen=True)
class Built:
    """A record's built object: its template (None: it cannot be cloned,
    so it is built at every read), the record and its revision, whether it
    is soft-deleted, its index values (the filters a read may ask for), and
    the name of its Backend and the Backend (or None) it was built with."""
    template: Template | None
    record: Document
    revision: str
    deleted: bool
    keys: dict[str, Any]
    backend_name: str | None
    backend: Any


def _backend_name(type: str, doc: Document) -> str | None:
    """The backend a record's object is built with (a connection's loads
    lazily, from its volume)."""
    if type == VOLUMES:
        return backend_of_host(doc.get("host"))
    return doc.get("progress") if type == SNAPSHOTS else None


def _index_values(type: str, doc: Document) -> dict[str, Any]:
    values = {}
    for name, key in INDEXES.get(type, {}).items():
        values[name] = key(doc) if callable(key) else doc.get(name)
    return values


class ObjectReads:
    """Reads of the plugin over `store`, with a cache of `cache_size`
    templates (the ``object_cache`` option)."""

    def __init__(self, store: Store, cache_size: int) -> None:
        self.store = store
        self.cache = ObjectCache(cache_size)
        store.subscribe(self.cache)
        self._builders: dict[str, Callable[[Document, str], Any]] = {
            VOLUMES: self._volume, SNAPSHOTS: self._snapshot, CONNECTIONS: self._connection}

    # -- answers ------------------------------------------------------------------

    def find(self, type: str, id: str | None, filters: dict[str, Any]) -> list[Any]:
        """Fresh cinderlib objects of the live records with this id (if
        given) whose indexes equal the filters given (empty ones ignored)."""
        filters = {name: value for name, value in filters.items() if value}
        built = self._built(type, id, filters)
        children = self._children(built) if type == VOLUMES and built else {}
        with gc_paused():       # (not while building: that makes cyclic garbage)
            objects = [self._clone(type, item) for item in built]
            for volume in objects if children else ():
                snapshots, connections = children[volume.id]
                _add_children(volume, [self._clone(SNAPSHOTS, item) for item in snapshots],
                              [self._clone(CONNECTIONS, item) for item in connections])
        return objects

    def saved(self, type: str, id: str, revision: str, doc: Document) -> None:
        """The record `doc` (a cinderlib object's, just stored at
        `revision`): keep its template for the next read.  (A copy: the
        record shares nested dicts with the saved object, which its owner
        goes on changing.)"""
        if self.cache.size > 0:
            try:
                built = self._build(type, orjson.loads(orjson.dumps({**doc, "id": id})),
                                    revision)
            except CorruptRecord:
                return
            self.cache.put(type, id, revision, built)

    # -- records to templates ---------------------------------------------------------

    def _built(self, type: str, id: str | None, filters: dict[str, Any]) -> list[Built]:
        """The built objects of the matching live records; by id, a record
        cinderlib cannot read raises `CorruptRecord`, in a listing it is
        skipped with that warning."""
        if id:
            revision = self.store.revision(type, id)
            pairs = [] if revision is None else [(id, revision)]
        else:
            pairs = self.store.revisions(type, **filters)
        if not pairs:
            return []
        found = []
        kept = self.cache.get_many(type, pairs)
        for (record_id, revision), built in zip(pairs, kept):
            try:
                if built is None or _backend(built.backend_name) is not built.backend:
                    built = self._get(type, record_id)     # (or a Backend loaded since)
            except CorruptRecord as exc:
                if id:
                    raise
                LOG.warning("skipping %s", exc)
                continue
            if built is not None and not built.deleted and all(
                    built.keys.get(name) == value for name, value in filters.items()):
                found.append(built)
        return found

    def _get(self, type: str, id: str) -> Built | None:
        """The record's object built now, at the revision read with it."""
        read = self.store.get_with_revision(type, id)
        if read is None:
            return None
        doc, revision = read
        built = self._build(type, doc, revision)
        self.cache.put(type, id, revision, built)
        return built

    def _build(self, type: str, doc: Document, revision: str) -> Built:
        name = _backend_name(type, doc)
        backend = _backend(name)
        resource = self._builders[type](doc, revision)
        try:
            template = Template(resource)
        except TypeError as exc:
            LOG.debug("%s %s built at every read: %s", type, doc.get("id"), exc)
            template = None
        return Built(template, doc, revision, bool(doc.get("deleted")),
                     _index_values(type, doc), name, backend)

    def _clone(self, type: str, built: Built) -> Any:
        if built.template is None:
            return self._builders[type](built.record, built.revision)
        return built.template.clone()

    def _where(self, type: str, id: str) -> str:
        return os.path.join(self.store.root, *paths.record_path(type, id).split("/"))

    # -- a volume's snapshots and connections --------------------------------------------

    def _children(self, volumes: list[Built]) -> dict[str, tuple[list[Built], list[Built]]]:
        """Each volume's snapshots and connections, sorted by id: by one
        index lookup per volume for a few volumes, else from one listing
        of each type."""
        children: dict[str, tuple[list[Built], list[Built]]] = {
            volume.record["id"]: ([], []) for volume in volumes}
        for slot, type in enumerate((SNAPSHOTS, CONNECTIONS)):
            if len(volumes) <= _PER_VOLUME:
                found = [built for id in children
                         for built in self._built(type, None, {"volume_id": id})]
            else:
                found = self._built(type, None, {})
            for built in sorted(found, key=lambda built: built.record["id"]):
                owner = children.get(built.keys["volume_id"])
                if owner is not None:
                    owner[slot].append(built)
        return children

    # -- records to cinderlib objects (the plain build) ------------------------------------

    def _volume(self, doc: Document, revision: str) -> cl_objects.Volume:
        """A volume with no snapshots and connections yet (`_add_children`
        adds them), as cinderlib builds one."""
        ovo = volume_from_record(doc, self._where(VOLUMES, doc["id"]))
        ovo.snapshots = cinder_objs.SnapshotList(context=cl_objects.CONTEXT, objects=[])
        ovo.volume_attachment = cinder_objs.VolumeAttachmentList(
            context=cl_objects.CONTEXT, objects=[])
        for field in ("cluster", "consistencygroup", "group"):
            setattr(ovo, field, None)    # as cinderlib creates volumes
        reset_changes(ovo)
        name = backend_of_host(ovo.host)
        backend = _backend(name)
        unloaded = backend is None and name is not None
        volume = cl_objects.Volume(NamedBackend(name) if unloaded else backend, __ovo=ovo)
        if unloaded:
            volume.backend = name
        setattr(volume, REVISION, revision)
        return volume

    def _snapshot_ovo(self, doc: Document) -> cinder_objs.Snapshot:
        ovo = ovo_from_record(cinder_objs.Snapshot, doc, self._where(SNAPSHOTS, doc["id"]))
        for name in ("cgsnapshot", "group_snapshot"):
            setattr(ovo, name, None)     # as cinderlib creates snapshots
        reset_changes(ovo)
        return ovo

    def _snapshot(self, doc: Document, revision: str) -> cl_objects.Snapshot:
        ovo = self._snapshot_ovo(doc)
        name = ovo.progress       # cinderlib keeps the backend name there
        if _backend(name) is not None or not name:
            snapshot = cl_objects.Snapshot(None, __ovo=ovo)
        else:
            snapshot = cl_objects.Snapshot(None, backend=NamedBackend(name), __ovo=ovo)
            snapshot.backend = name
        setattr(snapshot, REVISION, revision)
        return snapshot

    def _attachment_ovo(self, doc: Document) -> cinder_objs.VolumeAttachment:
        if doc.get("connection_info") is None:
            # A connection made on another host: its connection_info (the
            # credentials) stayed there (local_secrets).  cinderlib cannot
            # build a Connection without a "conn" in it.
            doc = {**doc, "connection_info": {"conn": {}}}
        return ovo_from_record(cinder_objs.VolumeAttachment, doc,
                               self._where(CONNECTIONS, doc["id"]))

    def _connection(self, doc: Document, revision: str) -> cl_objects.Connection:
        ovo = self._attachment_ovo(doc)
        # The backend and the volume load lazily, from the volume's record.
        connection = cl_objects.Connection(None, volume=None, __ovo=ovo)
        setattr(connection, REVISION, revision)
        return connection


def _add_children(volume: Any, snapshots: list[Any], connections: list[Any]) -> None:
    """Put the snapshots and connections into `volume` as cinderlib's
    Volume constructor links them."""
    ovo = volume._ovo
    for snapshot in snapshots:
        _link(volume, snapshot)
        volume._snapshots.append(snapshot)
        ovo.snapshots.objects.append(snapshot._ovo)
    for connection in connections:
        _link(volume, connection)
        volume._connections.append(connection)
        ovo.volume_attachment.objects.append(connection._ovo)


def _link(volume: Any, resource: Any) -> None:
    """What cinderlib's Snapshot and Connection constructors do given their
    volume: the resource's backend is the volume's, and it and its OVO
    point at the volume (the OVO tracking both fields as changed)."""
    ovo = resource._ovo
    ovo._obj_volume = volume._ovo
    ovo._obj_volume_id = volume._ovo.id
    ovo._changed_fields.update(("volume", "volume_id"))
    resource.backend = volume.backend
    resource._volume = volume
