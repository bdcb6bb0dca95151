"""Moving records in and out of a store: export, import, migrate.

Guarantees:

* `export` returns one JSON document holding every record of every type,
  sorted by type and id, with the store's format version and its secret
  fields (`write_file` creates the file 0600: it holds them).
* `read_export` checks the whole document before anything is written: a
  bad type, id or value is an error naming it, and nothing is stored.
  `import_export` then stores the records, added or replaced, never
  deleted; the CLI opens the store with the export's secret fields first,
  so what the exported store kept out of git stays out of git.
* cinderlib's own ``cinderlib.dumps()`` output (a list of backends whose
  volumes embed their snapshots and connections) and dumps of single
  objects are loaded by cinderlib (`load_cinderlib`) and saved through the
  file plugin (`write_objects`), so records are stored exactly as
  cinderlib itself would store them.
* `read_database` reads every live record of a cinderlib db-plugin
  database; `check_database` first makes sure it is one, so that the db
  plugin never creates a schema in a database that is not cinderlib's.
  Beyond the schema upgrade the db plugin applies when it opens a
  database, the database is only read.
* Every import is one `Store.batch`: one commit with git.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import orjson

from . import encoding, paths, secret
from .errors import ConfigError, GitpersistError, InvalidId
from .layout import FORMAT_VERSION
from .store import Store

EXPORT_KEY = "gitpersist_export"
EXPORT_VERSION = 1
CINDERLIB_OBJECTS = frozenset({"Volume", "Snapshot", "Connection"})
# Plain-data fields of a volume OVO the db plugin may leave unloaded.
VOLUME_LAZY_DATA = ("metadata", "admin_metadata", "glance_metadata")


class TransferError(GitpersistError):
    """A file to import that is unreadable or not in a known format."""


class Progress(Protocol):
    total: int | None

    def advance(self, count: int = 1) -> None: ...


class _NoProgress:
    total: int | None = None

    def advance(self, count: int = 1) -> None:
        pass


# -- files -------------------------------------------------------------------

def read_file(path: str) -> Any:
    """The JSON document in `path` (``-``: stdin)."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") \
                else sys.stdin.read().encode()
        else:
            with open(path, "rb") as file:
                data = file.read()
    except OSError as exc:
        raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TransferError(f"{path}: not valid JSON ({exc})") from None


def write_file(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temp file, so a failed write leaves
    any previous file whole.  Created 0600: an export holds whole records,
    secret fields included."""
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
            file.write(data)
        os.replace(temp, path)
    except OSError as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise TransferError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- export ------------------------------------------------------------------

def export(store: Store) -> tuple[dict[str, Any], int]:
    """(the export document, how many corrupt record files were left out)."""
    types = {type: store.all(type) for type in store.types()}
    skipped = sum(len(store.corrupt(type)) for type in types)
    document = {EXPORT_KEY: EXPORT_VERSION, "format": FORMAT_VERSION,
                "types": {type: records for type, records in types.items() if records}}
    if store.secret_fields:     # so that an import keeps them out of git too
        document["secret_fields"] = store.secret_fields
    return document, skipped


def secret_fields_of(document: dict[str, Any], source: str) -> dict[str, Any] | None:
    """The secret fields an export document declares (the store it was
    made from kept them local), checked; None if it declares none."""
    fields = document.get("secret_fields")
    try:
        return secret.as_format(secret.check_fields(fields, f"{source}: secret_fields")) or None
    except ConfigError as exc:
        raise TransferError(str(exc)) from None


# -- import ------------------------------------------------------------------

def kind_of(document: Any, source: str = "import") -> str:
    """``"export"`` for a `gitpersist export` document, ``"cinderlib"`` for
    cinderlib dumps() output; `TransferError` for anything else."""
    if isinstance(document, dict) and EXPORT_KEY in document:
        return "export"
    items = document if isinstance(document, list) else [document]
    if all(_is_cinderlib_item(item) for item in items):
        return "cinderlib"
    raise TransferError(f"{source}: neither a `gitpersist export` document nor "
                        "cinderlib dumps() output")


def _is_cinderlib_item(item: Any) -> bool:
    """A dumped backend (of any Backend class: it holds "volumes") or object."""
    return (isinstance(item, dict) and isinstance(item.get("class"), str)
            and isinstance(item.get("backend"), dict)
            and (item["class"] in CINDERLIB_OBJECTS or isinstance(item.get("volumes"), list)))


Record = tuple[str, str, dict[str, Any]]      # type, id, record


def read_export(document: dict[str, Any], source: str = "import") -> list[Record]:
    """The records of an export document, all checked before any is
    written; `TransferError` names the first one at fault."""
    version, format = document.get(EXPORT_KEY), document.get("format")
    if version != EXPORT_VERSION:
        raise TransferError(f"{source}: export version {version!r}; this gitpersist "
                            f"reads version {EXPORT_VERSION}")
    if not isinstance(format, int) or format > FORMAT_VERSION:
        raise TransferError(f"{source}: store format {format!r}; this gitpersist "
                            f"understands up to {FORMAT_VERSION}")
    types = document.get("types")
    if not isinstance(types, dict):
        raise TransferError(f'{source}: "types" must be an object of type: [records]')
    writes = []
    seen = set()
    for type, records in types.items():
        if not paths.is_type(type):
            raise TransferError(f"{source}: {type!r} is not a type name")
        if not isinstance(records, list):
            raise TransferError(f"{source}: types.{type} must be a list of records")
        for index, record in enumerate(records):
            where = f"{source}: types.{type}[{index}]"
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise TransferError(f'{where}: not a record (an object with a string "id")')
            id = record["id"]
            try:
                paths.record_path(type, id)
            except InvalidId as exc:
                raise TransferError(f"{where}: {exc}") from None
            encoding.dumps(record, f"{where} ({type} {id!r})")
            if (type, id) in seen:
                raise TransferError(f"{where}: {type} {id!r} appears twice")
            seen.add((type, id))
            writes.append((type, id, record))
    return writes


def import_export(store: Store, writes: list[Record], *, source: str = "import",
                  progress: Progress | None = None) -> Counter:
    """Store the records `read_export` returned, in one batch; return how
    many records of each type were written."""
    progress = progress or _NoProgress()
    counts: Counter = Counter()
    progress.total = len(writes)
    with store.batch(f"Import {len(writes)} records from {os.path.basename(source)}"):
        for type, id, record in writes:
            store.put(type, id, record)
            counts[type] += 1
            progress.advance()
    return counts


# -- cinderlib ---------------------------------------------------------------

def load_cinderlib(dump: Any, source: str = "import") -> list[tuple[str, Any]]:
    """The objects of cinderlib dumps() output as (kind, cinderlib object):
    each volume, then its snapshots and connections.  Needs cinderlib set
    up (see `cinderlib_persistence`).

    Backends are never instantiated: objects are loaded with a stand-in
    that only has the backend's name.  (cinderlib's own `load` would start
    the driver of a dump made with ``output_all_backend_info``, and fails on
    a volume with snapshots when the backend is not loaded.)"""
    from cinder.objects import base as cinder_base_ovo
    from cinderlib import objects
    items = dump if isinstance(dump, list) else [dump]
    found: list[tuple[str, Any]] = []
    for index, item in enumerate(items):
        name = item["backend"].get("volume_backend_name")
        if item["class"] in CINDERLIB_OBJECTS:
            children = [(item["class"], item)]
        else:                                   # a backend and its volumes
            children = [("Volume", volume) for volume in item["volumes"]]
        for position, (cls, data) in enumerate(children):
            where = f"{source}: item {index}" + (
                f", volume {position}" if item["class"] not in CINDERLIB_OBJECTS else "")
            try:
                ovo = cinder_base_ovo.CinderObject.obj_from_primitive(
                    data["ovo"], objects.Object.CONTEXT)
                obj = getattr(objects, cls)._load(_NamedBackend(name), ovo, save=False)
            except Exception as exc:    # whatever cinderlib's parsing hits
                raise TransferError(f"{where}: not a {cls} cinderlib can load "
                                    f"({type(exc).__name__}: {exc})") from None
            found.extend(_with_children(obj))
    return found


class _NamedBackend:
    """Stands in for a backend this process has not loaded: cinderlib's
    objects only ask it for its name (`id`)."""

    def __init__(self, name: str | None) -> None:
        self.id = name


def _with_children(obj: Any) -> list[tuple[str, Any]]:
    from cinderlib import objects
    if isinstance(obj, objects.Volume):
        return [("volume", obj), *(("snapshot", snapshot) for snapshot in obj._snapshots or []),
                *(("connection", connection) for connection in obj._connections or [])]
    if isinstance(obj, objects.Snapshot):
        return [("snapshot", obj)]
    return [("connection", obj)]


def read_database() -> list[tuple[str, Any]]:
    """Every live volume, snapshot, connection and key value in the
    database of cinderlib's db plugin set up, as (kind, cinderlib object).
    Needs cinderlib set up with that database (see `cinderlib_persistence`)."""
    import cinderlib
    db = cinderlib.Backend.persistence
    volumes = db.get_volumes()
    for volume in volumes:
        # The db plugin leaves a volume's image (glance) metadata to load
        # lazily; load it now, from this database, so it is copied too.
        for name in VOLUME_LAZY_DATA:
            if not volume._ovo.obj_attr_is_set(name):
                getattr(volume._ovo, name)
    return [*(("volume", volume) for volume in volumes),
            *(("snapshot", snapshot) for snapshot in db.get_snapshots()),
            *(("connection", connection) for connection in db.get_connections()),
            *(("key_value", key_value) for key_value in db.get_key_values())]


def check_database(url: str) -> None:
    """Refuse, before cinderlib's db plugin opens it (and would create its
    schema), a database that is missing or is not cinderlib's."""
    import sqlalchemy
    from sqlalchemy.engine import make_url
    try:
        parsed = make_url(url)
    except Exception as exc:        # SQLAlchemy raises ArgumentError and others
        shown = safe_url(url)   # SQLAlchemy's message may quote the whole URL
        raise TransferError(f"{shown!r} is not a database URL "
                            f"({str(exc).replace(url, shown)})") from None
    shown = safe_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise TransferError(f"{shown}: an in-memory database holds nothing to migrate")
        if not os.path.isfile(parsed.database):
            raise TransferError(f"no database file {parsed.database} ({shown})")
    try:
        engine = sqlalchemy.create_engine(parsed)
        try:
            tables = sqlalchemy.inspect(engine).get_table_names()
        finally:
            engine.dispose()
    except Exception as exc:        # drivers raise their own errors
        raise TransferError(f"cannot read {shown}: {type(exc).__name__}: {exc}") from None
    # cinder's schema: its volumes table, and the version table of its
    # migrations (alembic now, sqlalchemy-migrate in old releases).
    if "volumes" not in tables or not {"alembic_version", "migrate_version"} & set(tables):
        raise TransferError(f"{shown} is not a cinderlib database (it has no cinder "
                            "schema: volumes and alembic_version tables)")


@contextmanager
def cinderlib_persistence(config: dict[str, Any]) -> Iterator[Any]:
    """cinderlib set up with the persistence `config`, for the block.

    A process that has not set cinderlib up gets it set up (backends it
    does not know are taken by name, lock files in a temp folder, not the
    current one).  One that has keeps its setup; its persistence plugin is
    put back after the block."""
    import cinderlib
    backend = cinderlib.Backend
    previous = None
    if not backend.global_initialization:
        locks = tempfile.mkdtemp(prefix="gitpersist-cinderlib-")
        atexit.register(shutil.rmtree, locks, ignore_errors=True)
        cinderlib.setup(persistence_config=config, file_locks_path=locks,
                        fail_on_missing_backend=False)
    else:
        previous = backend.persistence
        backend.set_persistence(config)
    fail_on_missing = backend.fail_on_missing_backend
    backend.fail_on_missing_backend = False
    try:
        yield backend.persistence
    finally:
        backend.fail_on_missing_backend = fail_on_missing
        if previous is not None:
            backend.set_persistence({"storage": previous})


def write_objects(plugin: Any, objects: list[tuple[str, Any]], message: str, *,
                  progress: Progress | None = None) -> Counter:
    """Save cinderlib objects through the file plugin `plugin`, in one
    batch; return how many of each type were written."""
    progress = progress or _NoProgress()
    progress.total = len(objects)
    counts: Counter = Counter()
    with plugin.store.batch(message):
        for kind, obj in objects:
            getattr(plugin, f"set_{kind}")(obj)
            counts[f"{kind}s"] += 1
            progress.advance()
    return counts


# -- helpers -----------------------------------------------------------------

def describe_counts(counts: Counter) -> str:
    """``2 volumes, 1 snapshots`` (or ``nothing``)."""
    return ", ".join(f"{count} {type}" for type, count in sorted(counts.items())) \
        or "nothing"


def safe_url(url: str) -> str:
    """`url` without its password, for messages."""
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:       # not a URL SQLAlchemy parses: mask what looks like one
        return re.sub(r"([^/:@\s]*):[^/@\s]*@", r"\1:***@", url)
