"""cinderlib's data into a store, through the file plugin: cinderlib's
dumps and the databases of cinderlib's db plugin (the CLI's ``import`` of
a dump and ``migrate --from-db``).

Guarantees:

* cinderlib's own ``cinderlib.dumps()`` output (a list of backends whose
  volumes embed their snapshots and connections) and dumps of single
  objects (`is_dump`) are loaded by cinderlib (`load_cinderlib`) and saved
  through the file plugin (`write_objects`), so records are stored exactly
  as cinderlib itself would store them.
* `read_database` reads every live record of a cinderlib db-plugin
  database, in bulk: the image (glance) metadata the db plugin loads one
  volume at a time is read for all volumes in one query
  (``tests/test_cinder_migrate.py``; ``benchmarks/migrate_read.py``
  compares it with cinderlib's own reads); `check_database` first makes sure it is one, so that the db
  plugin never creates a schema in a database that is not cinderlib's.
  Beyond the schema upgrade the db plugin applies when it opens a
  database, the database is only read.
* Every import is one `Store.batch`: one commit with git, volumes before
  their snapshots and connections; one cut short commits what it wrote
  and says so (`write_objects`).

cinderlib, cinder and SQLAlchemy load only when a function needs them:
importing this module needs none of them.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import GitpersistError
from ..transfer import NoProgress, Progress, TransferError, batch_message

CINDERLIB_OBJECTS = frozenset({"Volume", "Snapshot", "Connection"})
# Plain-data fields of a volume OVO the db plugin may leave unloaded.
VOLUME_LAZY_DATA = ("metadata", "admin_metadata", "glance_metadata")


# -- cinderlib dumps -----------------------------------------------------------

def is_dump(document: Any) -> bool:
    """Whether `document` is cinderlib dumps() output: a dumped backend or
    object, or a list of them."""
    items = document if isinstance(document, list) else [document]
    return all(_is_dump_item(item) for item in items)


def _is_dump_item(item: Any) -> bool:
    """A dumped backend (of any Backend class: it holds "volumes") or object."""
    return (isinstance(item, dict) and isinstance(item.get("class"), str)
            and isinstance(item.get("backend"), dict)
            and (item["class"] in CINDERLIB_OBJECTS or isinstance(item.get("volumes"), list)))


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

    from .reads import NamedBackend
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
                obj = getattr(objects, cls)._load(NamedBackend(name), ovo, save=False)
            except Exception as exc:    # whatever cinderlib's parsing hits
                raise TransferError(f"{where}: not a {cls} cinderlib can load "
                                    f"({type(exc).__name__}: {exc})") from None
            found.extend(_with_children(obj))
    return found


def _with_children(obj: Any) -> list[tuple[str, Any]]:
    from cinderlib import objects
    if isinstance(obj, objects.Volume):
        return [("volume", obj), *(("snapshot", snapshot) for snapshot in obj._snapshots or []),
                *(("connection", connection) for connection in obj._connections or [])]
    if isinstance(obj, objects.Snapshot):
        return [("snapshot", obj)]
    return [("connection", obj)]


# -- cinderlib's db plugin ----------------------------------------------------

def read_database() -> list[tuple[str, Any]]:
    """Every live volume, snapshot, connection and key value in the
    database of cinderlib's db plugin set up, as (kind, cinderlib object).
    Needs cinderlib set up with that database (see `cinderlib_persistence`)."""
    import cinderlib
    db = cinderlib.Backend.persistence
    volumes = db.get_volumes()
    # The db plugin leaves a volume's image (glance) metadata to load
    # lazily, one query a volume: read it for all of them in one query
    # instead (benchmarks/migrate_read.py), then whatever else is unset.
    _load_glance_metadata([volume._ovo for volume in volumes])
    for volume in volumes:
        for name in VOLUME_LAZY_DATA:
            if not volume._ovo.obj_attr_is_set(name):
                getattr(volume._ovo, name)
    return [*(("volume", volume) for volume in volumes),
            *(("snapshot", snapshot) for snapshot in db.get_snapshots()),
            *(("connection", connection) for connection in db.get_connections()),
            *(("key_value", key_value) for key_value in db.get_key_values())]


def _load_glance_metadata(ovos: list[Any]) -> None:
    """Set the glance metadata of the volume OVOs that lack it, from one
    query, as the OVO's own lazy load would (its rows, by the
    ``volume_glance_metadata`` alias; none: ``{}``)."""
    from cinder.db.sqlalchemy import api as sqla_api
    from cinder.db.sqlalchemy import models
    from cinderlib import objects
    wanted = [ovo for ovo in ovos if not ovo.obj_attr_is_set("glance_metadata")]
    if not wanted:
        return
    rows: dict[str, list[Any]] = {}
    with sqla_api.main_context_manager.reader.using(objects.CONTEXT):
        for row in sqla_api.model_query(objects.CONTEXT, models.VolumeGlanceMetadata) \
                .filter_by(deleted=False).all():
            rows.setdefault(row.volume_id, []).append(row)
    for ovo in wanted:
        if ovo.id in rows:
            ovo.volume_glance_metadata = rows[ovo.id]
        else:
            ovo.glance_metadata = {}


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


def from_database(url: str) -> list[tuple[str, Any]]:
    """Every live object of the cinderlib db-plugin database at `url`
    (`check_database`, then `read_database` with cinderlib set up on it);
    `TransferError` says what failed, without the URL's password."""
    shown = safe_url(url)
    check_database(url)
    # Read everything first: opening the file plugin re-points cinder's
    # object hooks to itself, which the db plugin's lazy loads rely on.
    try:
        with cinderlib_persistence({"storage": "db", "connection": url}):
            return read_database()
    except GitpersistError:
        raise
    except Exception as exc:    # the db plugin, oslo.db and the driver raise their own
        raise TransferError(f"reading {shown} through cinderlib's db plugin failed: "
                            f"{type(exc).__name__}: {exc}") from None


def safe_url(url: str) -> str:
    """`url` without its password, for messages."""
    from sqlalchemy.engine import make_url
    try:
        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:       # not a URL SQLAlchemy parses: mask what looks like one
        return re.sub(r"([^/:@\s]*):[^/@\s]*@", r"\1:***@", url)


# -- cinderlib set up, and the file plugin -------------------------------------

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


def write_objects(plugin: Any, objects: list[tuple[str, Any]], what: str, *,
                  progress: Progress | None = None,
                  checkpoint: Callable[[], None] = lambda: None) -> Counter[str]:
    """Save cinderlib objects through the file plugin `plugin`, in one
    batch (`what`: the commit's subject, ``migrate sqlite:///...``); return
    how many of each type were written.  `checkpoint()` runs after each
    object and may raise to stop: the batch then commits what it wrote
    under an "interrupted: N of M" message (`transfer.batch_message`)."""
    progress = progress or NoProgress()
    progress.total = len(objects)
    counts: Counter[str] = Counter()
    with plugin.store.batch(
            lambda stopped: batch_message(what, counts.total(), len(objects), stopped)):
        for kind, obj in objects:
            getattr(plugin, f"set_{kind}")(obj)
            counts[f"{kind}s"] += 1
            progress.advance()
            checkpoint()
    return counts


@contextmanager
def file_plugin(root: str, *, git: bool) -> Iterator[Any]:
    """cinderlib's file plugin on the store at `root` (one process, no
    watcher), closed after the block."""
    from .plugin import FilePersistence     # cinderlib loads only when needed
    plugin = FilePersistence(path=root, git=git, watch="off")
    try:
        yield plugin
    finally:
        plugin.close()
