"""gitpersist.locking: one writer at a time; the folder it locks is the one opened."""

from __future__ import annotations

import os
import threading

import pytest

from gitpersist import LockTimeout, Store, StoreError
from gitpersist.locking import WriteLock
from gitpersist.records import open_store_folder


@pytest.fixture
def lock(tmp_path):
    open_store_folder(str(tmp_path), 0o700)
    return WriteLock(str(tmp_path), timeout=0.2, file_mode=0o600)


def test_exclusive_is_reentrant_and_excludes_other_threads(tmp_path):
    open_store_folder(str(tmp_path), 0o700)
    lock = WriteLock(str(tmp_path), timeout=10, file_mode=0o600)
    entered = threading.Event()
    with lock.exclusive():
        with lock.exclusive():      # a write inside a batch
            pass
        thread = threading.Thread(target=lambda: (lock.exclusive().__enter__(), entered.set()))
        thread.start()
        assert not entered.wait(0.3)
    assert entered.wait(5)
    thread.join()


def test_another_holder_times_out_naming_the_lock_and_option(tmp_path, lock):
    other = WriteLock(str(tmp_path), timeout=0.1, file_mode=0o600)
    with lock.exclusive():
        with pytest.raises(LockTimeout, match=r"write\.lock within 0\.1 s \(lock_timeout\)"):
            with other.exclusive():
                pass


def test_a_replaced_store_folder_refuses_the_write(tmp_path, lock):
    os.rename(tmp_path / ".gitpersist", tmp_path / "old")     # kept: its inode is not reused
    os.mkdir(tmp_path / ".gitpersist")
    with pytest.raises(StoreError, match="was removed or replaced"):
        with lock.exclusive():
            pass


def test_a_closed_lock_refuses(lock):
    lock.close()
    with pytest.raises(StoreError, match="is closed"):
        with lock.exclusive():
            pass


@pytest.mark.parametrize("how", ["put", "batch"])
def test_readers_never_wait_for_a_commit(tmp_path, how):
    """The cache lock is not held across a write's git work: a reader of
    another record (not cached yet: it is read from disk) gets it while a
    commit is stuck."""
    with Store(tmp_path, git=True, watch="off", fsync=False) as store:
        store.put("volumes", "other", {"n": 1})
        store.put("volumes", "mine", {"n": 1})
        reader = Store(tmp_path, watch="off")       # its cache is empty
        stuck, release = threading.Event(), threading.Event()
        write_pack = store.history.objects.write_pack

        def slow_write_pack():      # the commit, stuck with every lock a writer holds
            stuck.set()
            assert release.wait(30)
            write_pack()
        store.history.objects.write_pack = slow_write_pack
        if how == "put":
            writer = threading.Thread(target=store.put, args=("volumes", "mine", {"n": 2}))
        else:
            def batch():
                with store.batch("two"):
                    store.put("volumes", "mine", {"n": 2})
            writer = threading.Thread(target=batch)
        writer.start()
        try:
            assert stuck.wait(10)
            got = []
            thread = threading.Thread(target=lambda: got.append(store.get("volumes", "other")))
            thread.start()
            thread.join(5)
            assert got == [{"id": "other", "n": 1}], "the reader waited for the commit"
            assert reader.get("volumes", "mine") == {"id": "mine", "n": 2}
        finally:
            release.set()
            writer.join()
            reader.close()
