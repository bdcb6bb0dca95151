"""lock_timeout for a writer whose rival is a thread of its own process."""
import threading, time

import pytest

from gitpersist import LockTimeout, Store


@pytest.mark.parametrize("timeout", [0, 0.5])
def test_a_thread_waiting_for_another_threads_batch_honours_lock_timeout(tmp_path, timeout):
    store = Store(tmp_path, watch="off", lock_timeout=timeout)
    holding, release = threading.Event(), threading.Event()

    def hold():
        with store.batch("a long batch"):
            holding.set()
            release.wait(10)
    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    threading.Timer(4, release.set).start()
    started = time.monotonic()
    try:
        with pytest.raises(LockTimeout, match="lock_timeout"):
            store.put("volumes", "v", {"n": 1})
    finally:
        waited = time.monotonic() - started
        release.set()
        thread.join()
        store.close()
    assert waited < timeout + 1
