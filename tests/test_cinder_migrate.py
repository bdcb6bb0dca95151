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
