"""Several real processes on one store: no lost or torn writes."""

from __future__ import annotations

import json
import os

import pytest
from helpers import start_python

from gitpersist import Store

WORKER = """
import sys
from gitpersist import ABSENT, ConflictError, Store
root, me = sys.argv[1], sys.argv[2]
with Store(root) as store:
    for n in range(40):
        store.put("items", f"{me}-{n}", {"writer": me, "n": n, "pad": "x" * 2000})
        while True:     # read-modify-write of a shared counter, optimistically
            current = store.get("counters", "shared")
            try:
                if current is None:
                    store.put("counters", "shared", {"value": 1}, expect=ABSENT)
                else:
                    # the revision of what was read (a second read could be newer)
                    store.put("counters", "shared", {"value": current["value"] + 1},
                              expect=store.revision_of("counters", current))
                break
            except ConflictError:
                continue
print("done")
"""


@pytest.mark.slow
def test_concurrent_writers_lose_nothing(tmp_path):
    workers = [start_python(WORKER, str(tmp_path), f"w{i}") for i in range(4)]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    with Store(tmp_path, watch="off") as store:
        items = store.all("items")
        assert len(items) == 4 * 40
        assert all(item["pad"] == "x" * 2000 for item in items)
        assert store.get("counters", "shared")["value"] == 4 * 40
    for folder, _, names in os.walk(tmp_path / "items"):
        for name in names:
            assert not name.startswith("."), f"leftover temp file {name}"
            json.loads(open(os.path.join(folder, name)).read())      # none torn


READER = """
import sys, time
from gitpersist import Store
with Store(sys.argv[1], indexes={"items": {"tag": None}}) as store:
    store.find("items")        # warm cache, then follow the other process
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if [d["id"] for d in store.find("items", tag="late")] == ["x"]:
            print("seen", flush=True)
            break
        time.sleep(0.005)
"""


def test_reader_process_follows_writer_process(tmp_path):
    with Store(tmp_path, watch="off") as store:
        store.put("items", "x", {"tag": "early"})
        reader = start_python(READER, str(tmp_path))
        assert reader.stdout.readline().strip() == "ready"
        store.put("items", "x", {"tag": "late"})
        out, err = reader.communicate(timeout=120)
    assert out.strip() == "seen", err


def test_threads_share_one_store(tmp_path):
    import threading
    with Store(tmp_path, indexes={"t": {"k": None}}) as store:
        def work(me):
            for n in range(50):
                store.put("t", f"{me}-{n}", {"k": me})
                assert store.get("t", f"{me}-{n}") == {"id": f"{me}-{n}", "k": me}
                store.find("t", k=me)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for me in range(4):
            assert len(store.find("t", k=me)) == 50
        assert len(store.all("t")) == 200
