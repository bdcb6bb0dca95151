"""The change log when it cannot be written whole or is not a plain file (an
adversarial review): errors name it, nothing is hidden from readers."""
import os
import subprocess
import sys

import pytest

from gitpersist import Store, StoreError

CHILD = """
import os, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from gitpersist import Store
root, extra, doc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = Store(root, watch="off")
store.get("volumes", "v1")    # cached
size = os.path.getsize(os.path.join(root, ".gitpersist", "changes"))
# a file-size limit stands in for a full disk or a quota: a short write
resource.setrlimit(resource.RLIMIT_FSIZE, (size + extra, resource.RLIM_INFINITY))
try:
    store.put("volumes", "v1", {"n": int(doc)})
    print("acknowledged")
except BaseException as exc:
    print(f"raised {type(exc).__name__}: {exc}")
    print(f"own read n={store.get('volumes', 'v1')['n']}")
"""


def child(root, extra, n):
    return subprocess.run([sys.executable, "-c", CHILD, root, str(extra), str(n)],
                          capture_output=True, text=True, timeout=60).stdout.strip()


def test_an_acknowledged_write_whose_log_line_was_cut_short_is_seen(tmp_path):
    root = str(tmp_path)
    reader = Store(root, watch="off")
    reader.put("volumes", "v1", {"n": 0})
    assert reader.get("volumes", "v1")["n"] == 0       # cached
    out = child(root, 10, 1)                         # the line's first 10 bytes only
    assert out.startswith("raised StoreError: cannot append to") and "changes" in out, out
    assert "own read n=1" in out, out               # on disk, and read so by its own process
    with Store(root, watch="off") as other:
        other.put("volumes", "v1", {"n": 2})         # the next writer's line is whole
    try:
        assert reader.get("volumes", "v1")["n"] == 2
    finally:
        reader.close()


def test_a_cut_line_does_not_hide_the_next_writers_line(tmp_path):
    """After one process's line was cut short (its disk full a moment), the
    next line, a healthy process's acknowledged write, is glued to it."""
    root = str(tmp_path)
    reader = Store(root, watch="off")
    reader.put("volumes", "v2", {"n": 0})
    assert reader.get("volumes", "v2")["n"] == 0       # cached
    child(root, 45, 1)                                # "<revision> volu"
    with Store(root, watch="off") as other:
        other.put("volumes", "v2", {"n": 2})           # acknowledged
    try:
        assert reader.get("volumes", "v2")["n"] == 2
    finally:
        reader.close()


def test_a_log_that_cannot_be_appended_to_raises_a_store_error_naming_it(tmp_path):
    root = str(tmp_path)
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {"n": 0})
    out = child(root, 0, 1)
    with Store(root, watch="off") as store:
        on_disk = store.get("volumes", "v1")["n"]
    # the record file was replaced (n=1) though the put raised; its own
    # process must read what is on disk
    assert f"own read n={on_disk}" in out, out
    assert out.startswith("raised StoreError") and "changes" in out, out




@pytest.fixture
def planted(tmp_path):
    root = str(tmp_path / "store")
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {"n": 1})
    target = tmp_path / "outside"
    target.write_text("")
    changes = os.path.join(root, ".gitpersist", "changes")
    os.unlink(changes)
    os.symlink(target, changes)
    return root


def test_a_symlinked_change_log_is_refused_naming_it(planted):
    """As a symlinked .gitpersist is: never followed, no raw OSError."""
    with pytest.raises(StoreError, match=r"\.gitpersist/changes: .*symbolic links.*never follows"):
        Store(planted, watch="off")
    assert open(os.path.join(os.path.dirname(planted), "outside")).read() == ""
