"""End to end: a real cinderlib Backend on cinder's FakeLoggingVolumeDriver,
storage="file", run as several processes in sequence.  Each process checks
the state the previous one left: create and snapshot; clone from the
snapshot and connect; list with no Backend loaded; disconnect and delete;
list again.  In plain and in git mode."""

from __future__ import annotations

import json
import pathlib
import subprocess

import pytest

from helpers import CINDERLIB_MISSING, run_python

pytestmark = pytest.mark.cinderlib
pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)

EXAMPLES = str(pathlib.Path(__file__).resolve().parents[1] / "examples")
CONNECTOR = {"host": "e2e-host", "initiator": "iqn.2024-01.org.example:e2e",
             "ip": "192.0.2.1", "multipath": False, "platform": "x86_64",
             "os_type": "linux"}

WORKER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import cinderlib
from fake_backend import fake_backend

step, store, locks, git = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "git"
cinderlib.setup(file_locks_path=locks, persistence_config={
    "storage": "file", "path": store, "git": git})
persistence = cinderlib.Backend.persistence
CONNECTOR = json.loads(sys.argv[6])


def state():
    def backend(resource):
        return getattr(resource.backend, "id", resource.backend)
    return {
        "volumes": {v.name: {
            "id": v.id, "status": v.status, "size": v.size, "backend": backend(v),
            "snapshot_id": v.snapshot_id,
            "extra_specs": v.volume_type and v.volume_type.extra_specs,
            "snapshots": sorted(s.id for s in v.snapshots),
            "connections": sorted(c.id for c in v.connections)}
            for v in persistence.get_volumes()},
        "snapshots": {s.name: {"id": s.id, "status": s.status, "volume_id": s.volume_id,
                               "backend": backend(s)}
                      for s in persistence.get_snapshots()},
        "connections": {c.id: {"volume_id": c.volume_id, "connector": c.connector_info,
                               "protocol": c.protocol, "backend": backend(c)}
                        for c in persistence.get_connections()},
    }


before = state()
if step == "create":
    volume = fake_backend().create_volume(1, name="data", extra_specs={"tier": "gold"})
    volume.create_snapshot(name="snap")
elif step == "clone-connect":
    fake_backend()
    [volume] = cinderlib.Volume.get_by_name("data")
    [snapshot] = volume.snapshots
    snapshot.create_volume(name="clone")
    volume.connect(CONNECTOR)
elif step == "disconnect-delete":
    fake_backend()
    [volume] = cinderlib.Volume.get_by_name("data")
    [connection] = volume.connections
    connection.disconnect()
    after_disconnect = state()
    [clone] = cinderlib.Volume.get_by_name("clone")
    clone.delete()
    volume.snapshots[0].delete()
    volume.delete()
    print(json.dumps({"after_disconnect": after_disconnect}))
else:
    assert step == "read" and not cinderlib.Backend.backends
persistence.close()
print(json.dumps({"before": before, "after": state()}))
"""


def run_step(tmp_path, git, step):
    result = run_python(WORKER, EXAMPLES, step, str(tmp_path / "store"),
                        str(tmp_path / "locks"), "git" if git else "plain",
                        json.dumps(CONNECTOR))
    out = {}
    for line in result.stdout.splitlines():
        out.update(json.loads(line))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("git", [False, True], ids=["plain", "git"])
def test_backend_lifecycle_across_processes(tmp_path, git):
    empty = {"volumes": {}, "snapshots": {}, "connections": {}}

    # 1. create a volume and snapshot it
    out = run_step(tmp_path, git, "create")
    assert out["before"] == empty
    data, snap = out["after"]["volumes"]["data"], out["after"]["snapshots"]["snap"]
    assert (data["status"], data["size"], data["backend"]) == ("available", 1, "lvm")
    assert data["extra_specs"] == {"tier": "gold"}
    assert data["snapshots"] == [snap["id"]] and data["connections"] == []
    assert (snap["status"], snap["volume_id"]) == ("available", data["id"])
    first = out["after"]

    # 2. a new process sees them; clone from the snapshot, connect the volume
    out = run_step(tmp_path, git, "clone-connect")
    assert out["before"] == first
    after = out["after"]
    clone = after["volumes"]["clone"]
    assert (clone["status"], clone["snapshot_id"], clone["size"]) == ("available", snap["id"], 1)
    [(conn_id, conn)] = after["connections"].items()
    assert after["volumes"]["data"]["status"] == "in-use"
    assert after["volumes"]["data"]["connections"] == [conn_id]
    assert (conn["volume_id"], conn["connector"], conn["protocol"]) == (
        data["id"], CONNECTOR, "iscsi")
    second = after

    # 3. a process with no Backend (a CLI, a monitor) lists everything
    out = run_step(tmp_path, git, "read")
    assert out["before"] == second

    # 4. disconnect, then delete everything
    out = run_step(tmp_path, git, "disconnect-delete")
    assert out["before"] == second
    disconnected = out["after_disconnect"]
    assert disconnected["connections"] == {}
    assert disconnected["volumes"]["data"]["status"] == "available"
    assert disconnected["volumes"]["data"]["connections"] == []
    assert out["after"] == empty

    # 5. and a new process finds nothing
    assert run_step(tmp_path, git, "read") == {"before": empty, "after": empty}

    store = tmp_path / "store"
    assert [p for p in store.rglob("*.json") if ".gitpersist" not in p.parts] == []
    if git:
        log = subprocess.run(["git", "-C", str(store), "log", "--format=%s"],
                             capture_output=True, text=True, check=True).stdout
        subjects = set(log.splitlines())
        vid, sid = data["id"], snap["id"]
        for subject in (f"volume {vid} (data): created",
                        f"snapshot {sid} (snap): created",
                        f"volume {clone['id']} (clone): created",
                        f"connection {conn_id}: created",
                        f"volume {vid} (data): status available -> in-use",
                        f"connection {conn_id}: deleted",
                        f"volume {vid} (data): status in-use -> available",
                        f"snapshot {sid} (snap): deleted",
                        f"volume {vid} (data): deleted"):
            assert subject in subjects, (subject, log)
        status = subprocess.run(["git", "-C", str(store), "status", "--porcelain"],
                                capture_output=True, text=True, check=True).stdout
        assert status == ""

