"""Secrets: what the store lets out.  File and folder modes, symlinks
planted inside the store (never followed for writes), and secret fields
(connection_info) kept out of git: never in a record file, a commit, a
push or a sync, yet read back whole on this host."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from gitpersist import CorruptRecord, Store, StoreError, encoding, fsck, paths
from gitpersist.files import HOST
from gitpersist import files as gp_files
from gitpersist.records import RecordFiles
from helpers import git_bytes

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def modes_below(root) -> dict[str, int]:
    """relpath -> mode of everything the store made (git's folder aside)."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not (folder == str(root) and d == ".git")]
        for name in dirs + names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = mode(path)
    return found


# -- modes -------------------------------------------------------------------------

@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_a_new_store_is_private(tmp_path, use_git):
    root = tmp_path / "new" / "store"
    with Store(root, git=use_git, watch="off") as store:
        store.put("volumes", "v1", {"password": "secret"})
        store.put("connections", "c1", {"connection_info": {"auth_password": "x"}})
    assert mode(root) == 0o700      # git's objects (0444) below it are private too
    found = modes_below(root)
    assert {".gitpersist", ".gitpersist/format.json", ".gitpersist/.gitignore",
            ".gitpersist/write.lock"} <= found.keys()
    for relpath, bits in found.items():
        is_dir = os.path.isdir(os.path.join(root, relpath))
        assert bits == (0o700 if is_dir else 0o600), (relpath, oct(bits))


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_modes_are_configurable(tmp_path, use_git):
    root = tmp_path / "store"
    with Store(root, git=use_git, watch="off", file_mode=0o640, dir_mode=0o750) as store:
        store.put("volumes", "v1", {})
    assert mode(root) == 0o750
    for relpath, bits in modes_below(root).items():
        is_dir = os.path.isdir(os.path.join(root, relpath))
        assert bits == (0o750 if is_dir else 0o640), (relpath, oct(bits))


def test_an_existing_folder_keeps_its_mode(tmp_path):
    """A store in a folder that exists (an ops repository, say) leaves the
    folder's mode to its owner; what the store creates is private."""
    root = tmp_path / "ops"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {})
    assert mode(root) == 0o755
    assert mode(root / ".gitpersist") == mode(root / "volumes") == 0o700


# -- symlinks planted inside the store ------------------------------------------

@pytest.fixture
def outside(tmp_path):
    folder = tmp_path / "outside"
    folder.mkdir()
    return folder


def planted(root, relpath: str, target) -> None:
    path = os.path.join(root, *relpath.split("/"))
    if os.path.isdir(path) and not os.path.islink(path):
        os.rename(path, path + ".moved")
    elif os.path.lexists(path):
        os.unlink(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    os.symlink(target, path)


@pytest.mark.parametrize("relpath", [".gitpersist", "volumes",
                                     os.path.dirname(paths.record_path("volumes", "v1"))])
def test_a_symlinked_folder_is_not_followed(tmp_path, outside, relpath):
    root = str(tmp_path / "store")
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {"n": 1})
        planted(root, relpath, outside)
        with pytest.raises(StoreError, match="symbolic link|symlink"):
            store.put("volumes", "v1", {"n": 2})
    assert list(outside.iterdir()) == []


def test_a_symlinked_lock_file_is_not_followed(tmp_path, outside):
    root = str(tmp_path / "store")
    target = outside / "precious"
    target.write_text("precious")
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {"n": 1})
        planted(root, ".gitpersist/write.lock", target)
        with pytest.raises(StoreError, match=r"write\.lock"):
            store.put("volumes", "v1", {"n": 2})
    assert target.read_text() == "precious"
    assert [p.name for p in outside.iterdir()] == ["precious"]


def test_opening_a_store_whose_metadata_folder_is_a_symlink(tmp_path, outside):
    root = tmp_path / "store"
    root.mkdir()
    os.symlink(outside, root / ".gitpersist")
    with pytest.raises(StoreError, match=r"\.gitpersist.*symlink"):
        Store(root, watch="off")
    assert list(outside.iterdir()) == []


# -- secret fields ---------------------------------------------------------------------

PASSWORD = "Sup3r-S3cret-CHAP-pw"
TARGET_AUTH = f"CHAP chapuser {PASSWORD}"       # a volume's provider_auth
CONNECTION = {"volume_id": "v1", "attach_status": "attached", "connection_info": {
    "conn": {"driver_volume_type": "iscsi", "data": {
        "target_iqn": "iqn.2010-10.org.openstack:volume-v1", "target_lun": 1,
        "auth_method": "CHAP", "auth_username": "chap-user", "auth_password": PASSWORD,
        "discovery_auth_password": PASSWORD + "-discovery", "access_mode": "rw"}},
    "connector": {"host": "h1", "initiator": "iqn.1993-08.org.debian:01:h1"}}}
SECRETS = {"connections": ["connection_info"]}


def everything_git_has(root) -> bytes:
    """Every object of the repository (history, all refs, loose and packed,
    dangling too) and every patch."""
    objects = git_bytes(root, "cat-file", "--batch-all-objects", "--batch")
    return objects + git_bytes(root, "log", "-p", "--all", "--reflog")


def side_file(root, type: str, id: str) -> str:
    return os.path.join(root, ".gitpersist", "secrets", *paths.record_path(type, id).split("/"))


def record_file(root, type: str, id: str) -> str:
    return os.path.join(root, *paths.record_path(type, id).split("/"))


@pytest.mark.parametrize("use_git", [False, True], ids=["plain", "git"])
def test_secret_fields_stay_local_and_read_back_whole(tmp_path, use_git):
    root = str(tmp_path / "store")
    with Store(root, git=use_git, watch="off", secret_fields=SECRETS) as store:
        store.put("volumes", "v1", {"size": 1})
        revision = store.put("connections", "c1", CONNECTION)
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1"}
        assert store.revision("connections", "c1") == revision
        assert store.revision_of("connections", {**CONNECTION, "id": "c1"}) == revision
    with open(record_file(root, "connections", "c1"), "rb") as file:
        public = file.read()
    assert PASSWORD.encode() not in public and b"connection_info" not in public
    assert mode(side_file(root, "connections", "c1")) == 0o600
    assert mode(os.path.dirname(side_file(root, "connections", "c1"))) == 0o700
    with Store(root, git=use_git, watch="off") as store:    # the format file declares them
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1"}
        assert [d["id"] for d in store.find("connections", volume_id="v1")] == ["c1"]
        assert store.revision("connections", "c1") == revision
    if use_git:
        assert PASSWORD.encode() not in everything_git_has(root)
        assert git_bytes(root, "status", "--porcelain", "--ignored").splitlines() == [
            b"!! .gitpersist/changes", b"!! .gitpersist/secrets/", b"!! .gitpersist/write.holder",
            b"!! .gitpersist/write.lock"]
        assert fsck.clean(fsck.check(root, git=True))


def test_a_change_of_a_secret_field_alone_changes_the_revision(tmp_path):
    with Store(tmp_path, watch="off", secret_fields=SECRETS) as store:
        first = store.put("connections", "c1", CONNECTION)
        changed = {**CONNECTION, "connection_info": {"data": {"auth_password": "other"}}}
        second = store.put("connections", "c1", changed)
        assert first != second
        assert store.put("connections", "c1", changed) == second        # same content, same revision
        from gitpersist import ConflictError
        with pytest.raises(ConflictError):
            store.put("connections", "c1", CONNECTION, expect=first)
        assert store.put("connections", "c1", CONNECTION, expect=second) == first
        # the revision reveals nothing: it is not a plain hash of what it covers
        assert PASSWORD not in first
        assert len(first) == 40 and first != store.revision_of("connections", {"id": "c1"})


def test_removing_the_secret_fields_removes_the_side_file(tmp_path):
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
        store.put("connections", "c1", {"volume_id": "v1"})
        assert not os.path.exists(side_file(root, "connections", "c1"))
        assert store.get("connections", "c1") == {"id": "c1", "volume_id": "v1"}
        store.put("connections", "c2", CONNECTION)
        assert store.delete("connections", "c2")
        assert not os.path.exists(side_file(root, "connections", "c2"))
        assert store.get("connections", "c2") is None


def test_declared_fields_are_kept_by_every_later_open_and_old_records_are_split(tmp_path):
    root = str(tmp_path / "store")
    with Store(root, git=True, watch="off") as store:        # nothing declared yet
        store.put("volumes", "v1", {"size": 1})
    # written by hand (or by an older tool): the record file holds the secret
    os.makedirs(os.path.dirname(record_file(root, "connections", "c0")), exist_ok=True)
    with open(record_file(root, "connections", "c0"), "wb") as file:
        file.write(encoding.dumps({**CONNECTION, "id": "c0"}, "c0"))
    with Store(root, git=True, watch="off", secret_fields=SECRETS) as store:
        assert store.get("connections", "c0") == {**CONNECTION, "id": "c0"}
    assert PASSWORD.encode() not in open(record_file(root, "connections", "c0"), "rb").read()
    assert PASSWORD.encode() not in everything_git_has(root)
    with Store(root, git=True, watch="off") as store:        # no option: still declared
        store.put("connections", "c1", CONNECTION)
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1"}
    assert PASSWORD.encode() not in everything_git_has(root)
    assert git_bytes(root, "status", "--porcelain") == b""


def test_restore_keeps_the_secret_fields(tmp_path):
    with Store(tmp_path, git=True, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", {**CONNECTION, "attach_status": "attaching"})
        store.put("connections", "c1", CONNECTION)
        store.restore("connections", "c1", "HEAD~1")
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1",
                                                  "attach_status": "attaching"}
    assert PASSWORD.encode() not in everything_git_has(tmp_path)


def test_a_record_changed_by_other_means_keeps_its_secrets(tmp_path):
    """A sync, a git checkout or a hand edit replaces the record file alone."""
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
    with open(record_file(root, "connections", "c1"), "wb") as file:
        file.write(encoding.dumps({"id": "c1", "volume_id": "v1", "attach_status": "detached"},
                                  "c1"))
    with Store(root, watch="off") as store:
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1",
                                                  "attach_status": "detached"}


@pytest.mark.parametrize("crash_after", ["side file", "record file"])
def test_a_crash_between_the_two_files_tears_nothing(tmp_path, monkeypatch, crash_after):
    """The write stops after the side file, or after the record file (before
    the previous secrets are dropped): the old record with its old secrets,
    or the new one with the new."""
    root = str(tmp_path)
    changed = {**CONNECTION, "attach_status": "detached",
               "connection_info": {"data": {"auth_password": "new-password"}}}
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
        real = gp_files.write_atomic
        writes = []

        def write_then_crash(root_, relpath, *args, **kwargs):
            result = real(root_, relpath, *args, **kwargs)
            writes.append(relpath)
            if len(writes) == {"side file": 1, "record file": 2}[crash_after]:
                raise KeyboardInterrupt("crash")
            return result
        monkeypatch.setattr(gp_files, "write_atomic", write_then_crash)
        with pytest.raises(KeyboardInterrupt):
            store.put("connections", "c1", changed)
        monkeypatch.undo()
    with Store(root, watch="off") as store:
        expected = CONNECTION if crash_after == "side file" else changed
        assert store.get("connections", "c1") == {**expected, "id": "c1"}
        assert store.revision("connections", "c1") == store.revision_of(
            "connections", {**expected, "id": "c1"})


def test_a_broken_side_file_is_named(tmp_path):
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
        store.put("connections", "c2", CONNECTION)
    with open(side_file(root, "connections", "c1"), "w") as file:
        file.write("{ torn")
    with Store(root, watch="off") as store:
        with pytest.raises(CorruptRecord, match=side_file(root, "connections", "c1")):
            store.get("connections", "c1")
        assert [d["id"] for d in store.all("connections")] == ["c2"]
        store.put("connections", "c1", CONNECTION)          # writing repairs it
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1"}


@pytest.mark.parametrize("value, where", [
    ("connection_info", "secret_fields"),
    ({"connections": "id"}, "connections"),
    ({"connections": [3]}, "connections"),
    ({"Bad Type": ["x"]}, "type"),
])
def test_bad_secret_fields_are_refused(tmp_path, value, where):
    from gitpersist import ConfigError
    with pytest.raises(ConfigError, match=where):
        Store(tmp_path / "store", watch="off", secret_fields=value)
    assert not (tmp_path / "store").exists()


def test_a_symlinked_secrets_folder_is_not_followed(tmp_path, outside):
    root = str(tmp_path / "store")
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
        planted(root, ".gitpersist/secrets", outside)
        with pytest.raises(StoreError, match=r"secrets"):
            store.put("connections", "c1", CONNECTION)
    assert list(outside.iterdir()) == []


def test_fsck_checks_the_side_files(tmp_path):
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("volumes", "v1", {"size": 1})
        store.put("connections", "c1", CONNECTION)
        store.put("connections", "c2", CONNECTION)
    assert fsck.clean(fsck.check(root))
    os.unlink(record_file(root, "connections", "c2"))     # a deletion cut short
    os.chmod(side_file(root, "connections", "c1"), 0o644)
    stale = os.path.join(os.path.dirname(side_file(root, "connections", "c1")),
                         f".c1.json.{2 ** 22 + 7}.{HOST}.abcd.tmp")
    open(stale, "w").close()
    problems = {(p.kind, p.path) for p in fsck.check(root) if not p.note}
    relpath = paths.record_path("connections", "c1")
    assert problems == {
        ("orphan-secret", f".gitpersist/secrets/{paths.record_path('connections', 'c2')}"),
        ("permissions", f".gitpersist/secrets/{relpath}"),
        ("stale-temp", f".gitpersist/secrets/{os.path.dirname(relpath)}/{os.path.basename(stale)}")}
    assert all(p.repaired for p in fsck.check(root, repair=True))
    assert fsck.clean(fsck.check(root))
    assert not os.path.exists(side_file(root, "connections", "c2"))
    with Store(root, watch="off") as store:
        assert store.get("connections", "c1") == {**CONNECTION, "id": "c1"}


def test_a_record_given_secrets_during_a_full_load_is_read_with_them(tmp_path, monkeypatch):
    """A full load asks once whether the type has side files (none yet
    here); a record with secret fields written into a folder just before
    the load reads it must still come back with them."""
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as first:
        first.put("connections", "c0", {"volume_id": "v0"})     # no secrets anywhere
    reader = Store(root, watch="off")
    writer = Store(root, watch="off")
    real_list, written = RecordFiles.record_files, []

    def record_files(self, relfolder, folder=None):
        if not written:     # the reader's load lists its first folder: one id there
            id = next(f"c{n}" for n in range(1, 10_000)
                      if paths.record_path("connections", f"c{n}").startswith(relfolder + "/"))
            writer.put("connections", id, CONNECTION)
            written.append(id)
        return real_list(self, relfolder, folder)

    monkeypatch.setattr(RecordFiles, "record_files", record_files)
    try:
        records = {doc["id"]: doc for doc in reader.all("connections")}
        assert records[written[0]]["connection_info"] == CONNECTION["connection_info"]
        assert records["c0"] == {"id": "c0", "volume_id": "v0"}
    finally:
        reader.close()
        writer.close()


# -- through the cinderlib plugin ------------------------------------------------------

def plugin_connection(cinderlib, backend):
    vol = cinderlib.Volume(backend, size=1, name="data")
    vol._ovo.provider_auth = TARGET_AUTH      # what an iSCSI create_export returns
    vol.save()
    conn = cinderlib.Connection(backend, volume=vol, connector={"host": "h1"},
                                connection_info=CONNECTION["connection_info"])
    conn.save()
    return vol, conn


@pytest.mark.cinderlib
def test_connection_credentials_stay_on_the_host(cinderlib_setup, tmp_path):
    """Host a connects a volume with CHAP credentials and syncs; nothing in
    a's repository, the remote or host b has the password; a reads it back,
    b sees the connection without connection_info."""
    cinderlib = pytest.importorskip("cinderlib")
    from cinderlib.tests.unit import utils as cl_utils

    from gitpersist.plugin import FilePersistence
    remote, a, b = tmp_path / "remote.git", tmp_path / "a", tmp_path / "b"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    for host in (a, b):
        subprocess.run(["git", "clone", "-q", str(remote), str(host)], check=True,
                       capture_output=True)
    persistence = cinderlib_setup(persistence_config={
        "storage": "file", "path": str(a), "git": True, "remote": "origin"})
    backend = cl_utils.FakeBackend(volume_backend_name="fake")
    vol, conn = plugin_connection(cinderlib, backend)
    persistence.sync()

    reader = FilePersistence(path=str(a), watch="off")
    try:
        [got] = reader.get_connections(connection_id=conn.id)
        assert got.connection_info == CONNECTION["connection_info"]
        [volume] = reader.get_volumes(volume_id=vol.id)
        assert volume.provider_auth == TARGET_AUTH
    finally:
        reader.close()
    other = FilePersistence(path=str(b), git=True, remote="origin", watch="off")
    try:
        other.sync()
        [seen] = other.get_connections(connection_id=conn.id)
        assert seen.volume_id == vol.id and seen.connection_info == {"conn": {}}
        [volume] = other.get_volumes(volume_id=vol.id)
        assert [c.id for c in volume.connections] == [conn.id]
        assert volume.provider_auth is None
    finally:
        other.close()
    for repo in (a, b, remote):
        assert PASSWORD.encode() not in everything_git_has(repo), repo
    assert PASSWORD.encode() not in b"".join(
        p.read_bytes() for p in b.rglob("*") if p.is_file())


@pytest.mark.cinderlib
def test_local_secrets_off_keeps_connection_info_in_the_record(fresh_plugin, tmp_path):
    cinderlib = pytest.importorskip("cinderlib")
    from cinderlib.tests.unit import utils as cl_utils
    folder = tmp_path / "store"
    fresh_plugin(persistence_config={"storage": "file", "path": str(folder),
                                     "local_secrets": False})
    vol, conn = plugin_connection(cinderlib, cl_utils.FakeBackend(volume_backend_name="fake"))
    for type, id in (("connections", conn.id), ("volumes", vol.id)):
        with open(record_file(str(folder), type, id), "rb") as file:
            assert PASSWORD.encode() in file.read()
    assert not (folder / ".gitpersist" / "secrets").exists()


@pytest.fixture
def fresh_plugin(cinderlib_setup):
    return cinderlib_setup


def test_commit_messages_never_quote_a_secret_value(tmp_path):
    """Default messages quote short scalar values that changed: never those
    of secret fields."""
    with Store(tmp_path, git=True, watch="off", secret_fields={"users": ["password"]}) as store:
        store.put("users", "u1", {"name": "ann", "password": "hunter2"})
        store.put("users", "u1", {"name": "anne", "password": "hunter3"})
        store.put("users", "u1", {"name": "anne", "password": "hunter4"})
        store.delete("users", "u1")
        messages = git_bytes(tmp_path, "log", "--format=%B").decode()
    assert "name ann -> anne" in messages
    everything = everything_git_has(tmp_path)
    assert b"hunter" not in everything


def test_secrets_of_a_deletion_cut_short_go_at_the_next_open(tmp_path):
    """A record made again under the same id by other means (a sync) must
    not inherit the secrets of the deleted one."""
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", CONNECTION)
    os.unlink(record_file(root, "connections", "c1"))     # killed before the side file went
    stale = os.path.join(os.path.dirname(side_file(root, "connections", "c1")),
                         f".c1.json.{2 ** 22 + 7}.{HOST}.abcd.tmp")      # and a writer killed meanwhile
    open(stale, "w").close()
    with Store(root, watch="off") as store:
        assert not os.path.exists(side_file(root, "connections", "c1"))
        assert not os.path.exists(stale)
    with open(record_file(root, "connections", "c1"), "wb") as file:     # a sync brings it back
        file.write(encoding.dumps({"id": "c1", "volume_id": "v2"}, "c1"))
    with Store(root, watch="off") as store:
        assert store.get("connections", "c1") == {"id": "c1", "volume_id": "v2"}


@pytest.mark.cinderlib
def test_a_real_connect_keeps_chap_credentials_out_of_git(cinderlib_setup, tmp_path, monkeypatch):
    """cinderlib's own connect path, with a driver answering as an iSCSI
    driver with CHAP does; then a disconnect removes both files."""
    cinderlib = pytest.importorskip("cinderlib")
    folder = tmp_path / "store"
    cinderlib_setup(persistence_config={"storage": "file", "path": str(folder), "git": True})
    backend = cinderlib.Backend(volume_backend_name="lvm",
                                volume_driver="cinder.tests.fake_driver.FakeLoggingVolumeDriver")
    data = {"target_discovered": False, "target_iqn": "iqn.2010-10.org.openstack:vol",
            "target_portal": "192.0.2.10:3260", "target_lun": 1, "auth_method": "CHAP",
            "auth_username": "chap-user", "auth_password": PASSWORD,
            "discovery_auth_method": "CHAP", "discovery_auth_username": "disc-user",
            "discovery_auth_password": PASSWORD + "-discovery"}
    monkeypatch.setattr(backend.driver, "initialize_connection",
                        lambda volume, connector: {"driver_volume_type": "iscsi", "data": data})
    vol = backend.create_volume(1, name="data")
    conn = vol.connect({"host": "h1", "initiator": "iqn.1993-08.org.debian:01:h1",
                        "multipath": False})
    store = cinderlib.Backend.persistence.store
    store.flush()
    assert PASSWORD.encode() not in everything_git_has(folder)
    assert store.get("connections", conn.id)["connection_info"]["conn"]["data"][
        "auth_password"] == PASSWORD
    assert [c.id for c in cinderlib.Backend.persistence.get_connections(volume_id=vol.id)] \
        == [conn.id]
    conn.disconnect()
    assert not os.path.exists(record_file(str(folder), "connections", conn.id))
    assert not os.path.exists(side_file(str(folder), "connections", conn.id))
    assert PASSWORD.encode() not in everything_git_has(folder)


def test_declarations_of_two_processes_add_up(tmp_path):
    root = str(tmp_path)
    first = Store(root, watch="off", secret_fields={"connections": ["connection_info"]})
    try:        # a second process declares another field while the first is open
        with Store(root, watch="off", secret_fields={"users": ["password"]}):
            pass
        with Store(root, watch="off", secret_fields={"tokens": ["value"]}):
            pass
    finally:
        first.close()
    declared = json.loads(open(os.path.join(root, ".gitpersist", "format.json")).read())
    assert declared["secret_fields"] == {"connections": ["connection_info"],
                                         "tokens": ["value"], "users": ["password"]}
