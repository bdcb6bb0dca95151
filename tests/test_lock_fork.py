"""The write lock across fork()."""
import os, signal, subprocess, sys, textwrap, threading, time

import pytest

from gitpersist import LockTimeout, Store


def test_a_child_forked_inside_a_batch_writes_while_the_parent_holds_the_lock(tmp_path):
    """One writer at a time: a child forked while its parent holds the
    write lock must wait for it, not walk in as if re-entrant."""
    root = str(tmp_path)
    store = Store(root, watch="off", lock_timeout=2)
    store.put("volumes", "v0", {"n": 0})
    r, w = os.pipe()
    with store.batch("parent holds the lock"):
        pid = os.fork()
        if pid == 0:        # child
            os.close(r)
            try:
                store.put("volumes", "child", {"n": 1})
                os.write(w, b"entered")
            except LockTimeout:
                os.write(w, b"timeout")
            except BaseException as exc:
                os.write(w, repr(exc).encode())
            os._exit(0)
        os.close(w)
        time.sleep(3)          # the parent keeps the lock past the child's lock_timeout
    os.waitpid(pid, 0)
    answer = os.read(r, 100)
    store.close()
    assert answer == b"timeout", f"child inside the parent's batch: {answer!r}"


def test_a_child_forked_while_another_thread_holds_the_lock_honours_lock_timeout(tmp_path):
    root = str(tmp_path)
    store = Store(root, watch="off", lock_timeout=1)
    store.put("volumes", "v0", {"n": 0})
    holding, release = threading.Event(), threading.Event()

    def hold():
        with store.batch("held"):
            holding.set()
            release.wait(20)
    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait(5)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            store.put("volumes", "child", {"n": 1})
            os.write(w, b"entered")
        except LockTimeout:
            os.write(w, b"timeout")
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        os._exit(0)
    os.close(w)
    release.set()
    thread.join()
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        store.close()
        pytest.fail("the child's put hung for 8 s (lock_timeout=1): its copy of the "
                    "store's thread mutex is held by a thread that does not exist there")
    store.close()
    assert os.read(r, 100) in (b"timeout", b"entered")


def test_a_writer_killed_holding_the_lock_releases_it_though_it_forked_a_child(tmp_path):
    """'the kernel releases it when a process dies': not while a child the
    writer forked (a worker, a daemon) keeps the inherited descriptor."""
    root = str(tmp_path)
    code = textwrap.dedent(f"""
        import os, time, sys
        from gitpersist import Store
        store = Store({root!r}, watch="off")
        store.put("volumes", "v0", {{"n": 0}})      # the lock file is open from now on
        if os.fork() == 0:                          # a worker that never touches the store
            time.sleep(30)
            os._exit(0)
        with store.batch("dies holding the lock"):
            store.put("volumes", "v1", {{"n": 1}})
            print("holding", flush=True)
            os.kill(os.getpid(), 9)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        proc.wait(10)
        with Store(root, watch="off", lock_timeout=2) as store:
            store.put("volumes", "v2", {"n": 2})      # the writer is dead
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
