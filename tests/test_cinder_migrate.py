"""gitpersist.cinder.migrate: what it recognises as a cinderlib dump, and
what it says of database URLs (end to end runs are in test_cli.py)."""

from __future__ import annotations

import pytest

from gitpersist.cinder import migrate
from gitpersist.transfer import TransferError

BACKEND = {"volume_backend_name": "lvm"}


@pytest.mark.parametrize("document, dump", [
    ([{"class": "Backend", "backend": BACKEND, "volumes": []}], True),
    ({"class": "RBDBackend", "backend": BACKEND, "volumes": []}, True),   # any Backend class
    ({"class": "Volume", "backend": BACKEND, "ovo": {}}, True),           # one object
    ([{"class": "Snapshot", "backend": BACKEND}, {"class": "Connection", "backend": BACKEND}],
     True),
    ({"class": "Backend", "backend": BACKEND}, False),          # a backend without volumes
    ({"class": "Pool", "backend": BACKEND, "ovo": {}}, False),  # not an object cinderlib dumps
    ({"class": "Volume", "backend": "lvm"}, False),
    ([{"class": "Volume", "backend": BACKEND}, {"a": 1}], False),
    ({"gitpersist_export": 1}, False),
    ("text", False),
])
def test_what_is_a_cinderlib_dump(document, dump):
    assert migrate.is_dump(document) is dump


@pytest.mark.cinderlib        # SQLAlchemy comes with the cinderlib extra
@pytest.mark.parametrize("url, shown", [
    ("postgresql://admin:s3cret@db.example/cinder", "postgresql://admin:***@db.example/cinder"),
    ("admin:s3cret@db.example", "admin:***@db.example"),        # not a URL: masked anyway
    ("sqlite:////var/lib/cinderlib.sqlite", "sqlite:////var/lib/cinderlib.sqlite"),
])
def test_urls_are_shown_without_their_password(url, shown):
    pytest.importorskip("sqlalchemy")
    assert migrate.safe_url(url) == shown


@pytest.mark.cinderlib        # SQLAlchemy comes with the cinderlib extra
def test_an_in_memory_database_is_refused():
    pytest.importorskip("sqlalchemy")
    with pytest.raises(TransferError, match="an in-memory database holds nothing"):
        migrate.check_database("sqlite://")


GLANCE = """
import json, sys, tempfile
sys.path[:0] = [sys.argv[2]]
import cinderlib
from cinderlib.tests.unit import utils as cl_utils
workdir = sys.argv[1]
url = f"sqlite:///{workdir}/cinderlib.sqlite"
if sys.argv[3] == "populate":
    cinderlib.setup(persistence_config={"storage": "db", "connection": url},
                    file_locks_path=tempfile.mkdtemp(), fail_on_missing_backend=False)
    cl_utils.FakeBackend(volume_backend_name="fake")
    backend = cinderlib.Backend.backends["fake"]
    volumes = [cinderlib.Volume(backend, name=name, size=1) for name in ("img", "plain")]
    for volume in volumes:
        cinderlib.Backend.persistence.set_volume(volume)
    from cinder import db
    from cinderlib import objects
    db.volume_glance_metadata_create(objects.CONTEXT, volumes[0].id, "image_id", "img-1")
else:
    from cinder.db.sqlalchemy import api
    def one_by_one(*args, **kwargs):
        raise AssertionError("glance metadata read one volume at a time")
    api.volume_glance_metadata_get = one_by_one
    from cinder import db
    db.volume_glance_metadata_get = one_by_one
    from gitpersist.cinder import migrate
    found = migrate.from_database(url)
    print(json.dumps({obj.name: obj._ovo.glance_metadata
                      for kind, obj in found if kind == "volume"}))
"""


@pytest.mark.slow
@pytest.mark.cinderlib
def test_glance_metadata_is_read_for_every_volume_in_one_query(tmp_path):
    """Issue 16 item 2: migrate reads the database in bulk, not a query a volume."""
    import json
    import pathlib
    import subprocess
    import sys
    pytest.importorskip("cinderlib")
    source = str(pathlib.Path(__file__).resolve().parents[1])
    for step in ("populate", "read"):
        done = subprocess.run([sys.executable, "-c", GLANCE, str(tmp_path), source, step],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "img": {"image_id": "img-1"}, "plain": {}}
