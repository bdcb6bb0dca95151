"""Secret fields, as an adversarial review tried them: another
process's declaration, a sync that deletes and makes again, and a crash or a
reader at every step of the side-file protocol when a record gains its first
secrets or loses its last."""
import os
import subprocess

import pytest

from gitpersist import Store, paths
from gitpersist import files as gp_files

SECRETS = {"connections": ["password"]}


def test_a_crash_while_a_write_drops_the_secrets_reads_back_old_or_new(tmp_path, monkeypatch):
    """put() of a version without secret fields: the record file is
    replaced, then the side file removed.  Stopped in between, the new
    record must not come back with the old version's secrets."""
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", {"n": 1, "password": "hunter2"})
        real = gp_files.remove

        def crash(root_, relpath, **kwargs):
            if relpath.startswith(".gitpersist/secrets/"):
                raise KeyboardInterrupt("crash after the record file")
            return real(root_, relpath, **kwargs)
        monkeypatch.setattr(gp_files, "remove", crash)
        with pytest.raises(KeyboardInterrupt):
            store.put("connections", "c1", {"n": 2})        # the secret is dropped
        monkeypatch.undo()
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        assert store.get("connections", "c1") in ({"id": "c1", "n": 1, "password": "hunter2"},
                                                   {"id": "c1", "n": 2})


def test_a_field_declared_secret_by_another_process_never_reaches_a_record_file(tmp_path):
    """Secret fields are declared 'for good': a store already open when
    another process declares one must not write it into a record file
    (the file git commits)."""
    root = str(tmp_path)
    with Store(root, watch="off") as first:           # a long-running service
        first.put("connections", "c0", {"n": 0})
        with Store(root, watch="off", secret_fields=SECRETS):     # a tool declares it
            pass
        first.put("connections", "c1", {"n": 1, "password": "hunter2"})
    with open(os.path.join(root, paths.record_path("connections", "c1"))) as file:
        assert "hunter2" not in file.read()


def test_a_store_open_when_another_declares_a_secret_never_commits_it(tmp_path, monkeypatch):
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    root = str(tmp_path)
    with Store(root, git=True, watch="off", author="a <a@example.com>") as first:
        first.put("connections", "c0", {"n": 0})
        with Store(root, git=True, watch="off", author="b <b@example.com>",
                   secret_fields=SECRETS):
            pass
        first.put("connections", "c1", {"n": 1, "password": "hunter2"})
    assert "hunter2" not in git(root, "log", "-p", "--all")


def test_a_store_open_when_another_declares_a_secret_reads_records_whole(tmp_path):
    root = str(tmp_path)
    with Store(root, watch="off") as first:
        first.put("connections", "c1", {"n": 1, "password": "hunter2"})
        with Store(root, watch="off", secret_fields=SECRETS) as second:   # splits c1
            assert second.get("connections", "c1")["password"] == "hunter2"
        assert first.get("connections", "c1") == {"id": "c1", "n": 1, "password": "hunter2"}


GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout


def host(remote, name):
    git(remote.parent, "clone", "-q", str(remote), name)
    return Store(remote.parent / name / "meta", git=True, watch="off", fsync=False,
                 remote="origin", author=f"{name} <{name}@example.com>",
                 secret_fields=SECRETS)


def test_a_record_deleted_and_made_again_by_syncs_does_not_inherit_old_secrets(
        tmp_path, monkeypatch):
    """'a record made again under that id, by a sync say, must not inherit
    their secrets' (sidefiles.sweep): only true across a reopen."""
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    with host(remote, "a") as a:
        a.put("connections", "c1", {"n": 1})
        a.sync()
        with host(remote, "b") as b:
            b.sync()
            b.put("connections", "c1", {"n": 1, "password": "b-secret"})   # b's own secret
            b.sync()
            a.sync()
            a.delete("connections", "c1")
            a.sync()
            b.sync()                                    # c1 deleted on b
            assert b.get("connections", "c1") is None
            a.put("connections", "c1", {"n": 9})        # a new record, made on a
            a.sync()
            b.sync()
            assert b.get("connections", "c1") == {"id": "c1", "n": 9}


def test_a_crash_while_a_write_adds_the_first_secrets_reads_back_old_or_new(tmp_path,
                                                                           monkeypatch):
    """The record had no secret fields (no side file); the write gives it
    some.  Stopped after the side file (step 1), the old record must not
    come back with the new secrets."""
    root = str(tmp_path)
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        store.put("connections", "c1", {"n": 1})
        real = gp_files.write_atomic

        def crash(root_, relpath, *args, **kwargs):
            result = real(root_, relpath, *args, **kwargs)
            if relpath.startswith(".gitpersist/secrets/"):
                raise KeyboardInterrupt("crash after the side file")
            return result
        monkeypatch.setattr(gp_files, "write_atomic", crash)
        with pytest.raises(KeyboardInterrupt):
            store.put("connections", "c1", {"n": 2, "password": "new"})
        monkeypatch.undo()
    with Store(root, watch="off", secret_fields=SECRETS) as store:
        assert store.get("connections", "c1") in ({"id": "c1", "n": 1},
                                                   {"id": "c1", "n": 2, "password": "new"})


def test_a_reader_during_a_write_that_adds_the_first_secrets_reads_old_or_new(tmp_path,
                                                                             monkeypatch):
    """No crash: another store (process) reads between steps 1 and 2."""
    import threading
    root = str(tmp_path)
    writer = Store(root, watch="off", secret_fields=SECRETS)
    reader = Store(root, watch="off", secret_fields=SECRETS)
    writer.put("connections", "c1", {"n": 1})
    real = gp_files.write_atomic
    staged, go = threading.Event(), threading.Event()

    def slow(root_, relpath, *args, **kwargs):
        if relpath == paths.record_path("connections", "c1"):
            staged.set()
            go.wait(10)
        return real(root_, relpath, *args, **kwargs)
    monkeypatch.setattr(gp_files, "write_atomic", slow)
    thread = threading.Thread(target=writer.put,
                              args=("connections", "c1", {"n": 2, "password": "new"}))
    thread.start()
    try:
        assert staged.wait(10)
        seen = reader.get("connections", "c1")
    finally:
        go.set()
        thread.join()
        writer.close()
        reader.close()
    assert seen in ({"id": "c1", "n": 1}, {"id": "c1", "n": 2, "password": "new"})
