"""Crash harness: a writer process killed with SIGKILL at random moments,
in plain, git, batch, async, secrets (git, with a secret field) and sync
(with a remote another host pushes to) mode, plus kills at chosen moments (holding the branch lock, between
the two metadata files of a first open, inside a sync's merge).

Each round starts tests/crash_writer.py on the store, kills it at a random
moment (seeded: set GITPERSIST_CRASH_SEED to replay, GITPERSIST_CRASH_ROUNDS
for more rounds), then checks, before anything reopens the store:

* no record file is torn: every record file parses;
* every write that returned is there, with its content: the records are the
  state after the acknowledged operations, or after one more (the one in
  flight when the writer died);
* with git, HEAD holds a state the writer went through that is no older than
  what it acknowledged as committed (each write in "git" mode, each batch in
  "batch" mode; "async" mode promises no commit before close);
* `gitpersist.fsck.check` reports nothing worse than leftovers (temp files of
  the dead writer, uncommitted changes) and, in every other round, repairs
  them.

Then it reopens the store (recovery runs) and checks that it reads the same
records, that leftover temp files were ignored and are gone, and with git
that HEAD holds exactly the files, ``git status`` shows nothing and
``git fsck --strict`` is clean.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

import crash_writer
from gitpersist import Store, fsck, paths
from gitpersist.history import History
from helpers import eventually

WRITER = crash_writer.__file__
ROUNDS = int(os.environ.get("GITPERSIST_CRASH_ROUNDS", "6"))
SEED = int(os.environ.get("GITPERSIST_CRASH_SEED", "20261124"))
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
# What a crash may leave behind: the dead writer's temp files, changes it
# had not committed yet, a folder it had just emptied, the side file of a
# record it had just deleted.
LEFTOVERS = {"stale-temp", "uncommitted", "empty-folder", "orphan-secret"}


@pytest.fixture(autouse=True)
def no_git_config(monkeypatch):
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(History, "git_lock_timeout", 0.5)
    monkeypatch.setattr(History, "stale_lock_age", 0.3)


def leftovers(lines: list[str]) -> set[str]:
    """What fsck may report after the kill: `LEFTOVERS`, and a missing
    format file if the writer died before its store was open (a clone's
    folder exists before the store does)."""
    return LEFTOVERS if "ready" in lines else LEFTOVERS | {"format"}


def git_processes_in(root) -> list[int]:
    """Processes working in `root`: the git commands a killed writer
    started (update-index, fetch, push, a repack) run on to their end."""
    root = os.path.realpath(root)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if (cwd == root or cwd.startswith(root + os.sep)) and int(pid) != os.getpid():
            found.append(int(pid))
    return found


def git(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True)


def head_records(root) -> dict[str, dict] | None:
    """The volumes at HEAD (id -> document); None if there is no commit."""
    if (not os.path.isdir(os.path.join(root, ".git"))
            or git(root, "rev-parse", "--verify", "-q", "HEAD").returncode != 0):
        return None
    listing = git(root, "ls-tree", "-r", "-z", "HEAD", "--", "volumes").stdout
    blobs = [line.split(b"\t")[0].split()[2] for line in listing.split(b"\0") if line]
    out = subprocess.run(["git", "cat-file", "--batch"], cwd=root, check=True,
                         input=b"".join(blob + b"\n" for blob in blobs),
                         capture_output=True).stdout
    records, pos = {}, 0
    for _ in blobs:
        header_end = out.index(b"\n", pos)
        size = int(out[pos:header_end].split()[2])
        document = json.loads(out[header_end + 1:header_end + 1 + size])
        records[document["id"]] = document
        pos = header_end + 1 + size + 1
    return records


def disk_records(root) -> tuple[dict[str, dict], list[str]]:
    """The volumes on disk, read raw (every record file must parse), and the
    temp files found beside them."""
    records, temps = {}, []
    for folder, _, names in os.walk(os.path.join(root, "volumes")):
        for name in names:
            path = os.path.join(folder, name)
            if name.startswith("."):
                temps.append(path)
                continue
            with open(path, "rb") as file:
                data = file.read()
            try:
                document = json.loads(data)
            except ValueError:
                pytest.fail(f"torn record {path}: {data[:80]!r}...")
            records[document["id"]] = document
    return records, temps


def run_and_kill(root, mode: str, seed: int, fsync: bool, rng: random.Random) -> list[str]:
    """Start the writer, SIGKILL it at a random moment, return its lines."""
    proc = subprocess.Popen([sys.executable, WRITER, str(root), mode, str(seed),
                             "1" if fsync else "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **GIT_ENV})
    lines: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        for line in proc.stdout:
            lines.append(line.decode().strip())
            if lines[-1] == "ready":
                ready.set()
        ready.set()
    reader = threading.Thread(target=drain)
    reader.start()
    if rng.random() < 0.25:         # anywhere, opening and recovery included
        time.sleep(rng.uniform(0.0, 0.9))
    else:                           # while writing
        assert ready.wait(60)
        time.sleep(rng.uniform(0.0, 0.4))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.returncode in (-signal.SIGKILL, 0), stderr
    return lines


def states(start: dict, ops: list, upto: int) -> list[dict]:
    """The records after 0, 1, ... `upto` operations."""
    result = [dict(start)]
    for kind, id, document in ops[:upto]:
        state = dict(result[-1])
        if kind == "put":
            state[id] = {**document, "id": id}
        else:
            state.pop(id, None)
        result.append(state)
    return result


def public(records: dict | None) -> dict | None:
    """`records` as their record files hold them (secrets mode: no secret
    field)."""
    if records is None:
        return None
    return {id: {k: v for k, v in doc.items() if k not in crash_writer.SECRET_FIELDS}
            for id, doc in records.items()}


def crash_rounds(root, mode: str, seed: int, rounds: int = ROUNDS) -> None:
    use_git = mode != "plain"
    rng = random.Random(seed)
    model: dict[str, dict] = {}
    for round in range(rounds):
        where = f"{mode} round {round} (GITPERSIST_CRASH_SEED={seed})"
        round_seed = seed * 100 + round
        ops = crash_writer.operations(round_seed)
        lines = run_and_kill(root, mode, round_seed, fsync=round % 2 == 0, rng=rng)
        acked = [int(line.split()[1]) for line in lines if line.startswith("ack ")]
        done = len(acked)
        assert acked == list(range(done)), where
        if not os.path.isdir(root):         # killed before it made the folder
            assert done == 0, where
            continue
        possible = states(model, ops, min(done + 1, len(ops)))

        # -- before anything reopens the store ----------------------------
        on_disk, temps = disk_records(root)
        if mode == "secrets":       # the record files; the side files come with a read
            possible = [public(state) for state in possible]
        assert on_disk in possible[done:], f"{where}: acknowledged writes missing"
        whole = states(model, ops, min(done + 1, len(ops)))[
            done + possible[done:].index(on_disk)]
        if use_git:
            at_head = head_records(root)
            if mode in ("git", "secrets"):
                committed = done
            elif mode == "batch":
                ends = [end + 1 for end in crash_writer.batch_ends(round_seed, len(ops))]
                committed = max([0] + [int(line.split()[1]) + 1 for line in lines
                                       if line.startswith("batch ")])
                # a commit happens only at a batch end
                possible = [state if j in ends or j == 0 else None
                            for j, state in enumerate(possible)]
            else:
                committed = 0
            if at_head is not None or committed:
                assert at_head in possible[committed:], f"{where}: HEAD lost commits"
            assert eventually(lambda: not git_processes_in(root), timeout=60), where

        repair = round % 2 == 1
        problems = fsck.check(root, git=use_git, repair=repair)
        bad = [p for p in problems if p.kind not in leftovers(lines)]
        assert not bad, f"{where}: {[str(p) for p in bad]}"
        stale = {os.path.join(root, *p.path.split("/")) for p in problems
                 if p.kind == "stale-temp"}
        assert set(temps) <= stale, where
        if repair:
            assert fsck.clean(problems), f"{where}: {[str(p) for p in problems]}"
            assert not any(os.path.exists(path) for path in stale), where

        # -- reopened: recovery ----------------------------------------------
        with Store(root, git=use_git, watch="off") as store:
            assert {d["id"]: d for d in store.all("volumes")} == whole, where
            for id in crash_writer.IDS:
                assert store.get("volumes", id) == whole.get(id), where
        assert disk_records(root) == (on_disk, []), f"{where}: temp files left"
        if use_git:
            assert head_records(root) == on_disk, where
            if mode == "secrets":
                objects = git(root, "cat-file", "--batch-all-objects", "--batch").stdout
                assert b'"k"' not in objects, f"{where}: a secret value in git"
            status = git(root, "status", "--porcelain")
            assert status.returncode == 0 and status.stdout == b"", (where, status)
            run = git(root, "fsck", "--strict", "--no-progress")
            assert run.returncode == 0 and b"error" not in run.stderr, (where, run.stderr)
        assert fsck.clean(fsck.check(root, git=use_git)), where
        model = whole


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "git", "batch", "async", "secrets"])
def test_writer_killed_at_random_moments(tmp_path, mode):
    crash_rounds(str(tmp_path / "store"), mode,
                 SEED + ["plain", "git", "batch", "async", "secrets"].index(mode))


KILLED_HOLDING_THE_BRANCH_LOCK = """
import os, signal, sys
from gitpersist import Store
from gitpersist.history.refs import Refs
with Store(sys.argv[1], git=True, watch="off", fsync=False) as store:
    store.put("volumes", "v1", {"n": 1})
    def die(*args, **kwargs):           # called with <branch>.lock held
        os.kill(os.getpid(), signal.SIGKILL)
    Refs.append_reflog = die
    store.put("volumes", "v1", {"n": 2})
"""


def test_writer_killed_holding_the_branch_lock(tmp_path, caplog):
    root = tmp_path / "store"
    run = subprocess.run([sys.executable, "-c", KILLED_HOLDING_THE_BRANCH_LOCK, str(root)],
                         env={**os.environ, **GIT_ENV}, capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    branch = git(root, "symbolic-ref", "HEAD").stdout.decode().strip()
    lock = root / ".git" / (branch + ".lock")
    assert lock.exists()
    with Store(root, git=True, watch="off") as store:       # recovery commits v1 = 2
        assert store.get_at("volumes", "v1", "HEAD") == {"id": "v1", "n": 2}
    assert f"{lock}: removing a lock left" in caplog.text
    assert not lock.exists()
    assert git(root, "status", "--porcelain").stdout == b""
    assert fsck.clean(fsck.check(root, git=True))


KILLED_AT_FIRST_OPEN = """
import os, signal, sys
from gitpersist import Store
from gitpersist.layout import GITIGNORE_FILE
from gitpersist.records import RecordFiles
write = RecordFiles.write
def write_then_die(self, relpath, data):
    if relpath == GITIGNORE_FILE:     # the format file is written
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, relpath, data)
RecordFiles.write = write_then_die
Store(sys.argv[1], git=sys.argv[2] == "git", watch="off")
"""


@pytest.mark.parametrize("mode", ["plain", "git"])
def test_writer_killed_between_the_two_metadata_files(tmp_path, mode):
    root = tmp_path / "store"
    run = subprocess.run([sys.executable, "-c", KILLED_AT_FIRST_OPEN, str(root), mode],
                         env={**os.environ, **GIT_ENV}, capture_output=True)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert not (root / ".gitpersist" / ".gitignore").exists()
    with Store(root, git=mode == "git", watch="off") as store:
        store.put("volumes", "v1", {"n": 1})
    assert (root / ".gitpersist" / ".gitignore").exists()
    if mode == "git":       # the lock file stays out of git
        assert git(root, "status", "--porcelain", "--untracked-files=all").stdout == b""
        assert git(root, "ls-files").stdout.split() == [
            b".gitpersist/.gitignore", b".gitpersist/format.json",
            os.fsencode(paths.record_path("volumes", "v1"))]
    assert fsck.clean(fsck.check(root, git=mode == "git"))


@pytest.mark.slow
def test_writer_killed_during_syncs(tmp_path):
    """Host a writes and syncs with a remote that host b pushes to, and is
    killed at random moments, mostly inside syncs (they take longest).
    Besides the checks of the other modes: b's records on a are versions b
    pushed, and once a syncs again both hosts hold the same records."""
    remote, a, b = tmp_path / "remote.git", str(tmp_path / "a"), tmp_path / "b"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    for host in (a, b):
        subprocess.run(["git", "clone", "-q", str(remote), str(host)], check=True,
                       capture_output=True)
    theirs = [f"b-{n}" for n in range(6)]
    pushed: dict[str, list] = {id: [None] for id in theirs}   # every version b pushed
    rng = random.Random(SEED)
    model: dict[str, dict] = {}
    with Store(b, git=True, remote="origin", watch="off", fsync=False,
               author="b <b@example.com>") as other:
        for round in range(ROUNDS):
            where = f"sync round {round} (GITPERSIST_CRASH_SEED={SEED})"
            for id in rng.sample(theirs, 2):
                if rng.random() < 0.2:
                    other.delete("volumes", id)
                    pushed[id].append(None)
                else:
                    other.put("volumes", id, {"round": round, "by": "b"})
                    pushed[id].append({"round": round, "by": "b", "id": id})
            other.sync()
            round_seed = SEED * 100 + round
            ops = crash_writer.operations(round_seed)
            lines = run_and_kill(a, "sync", round_seed, fsync=round % 2 == 0, rng=rng)
            done = sum(line.startswith("ack ") for line in lines)
            possible = states(model, ops, min(done + 1, len(ops)))[done:]

            def split(records: dict | None) -> dict | None:
                if records is None:
                    return None
                for id in theirs:
                    assert records.get(id) in pushed[id], f"{where}: {id} is no version of b's"
                return {id: doc for id, doc in records.items() if id not in theirs}
            on_disk, temps = disk_records(a)
            assert split(on_disk) in possible, f"{where}: acknowledged writes missing"
            at_head = split(head_records(a))
            assert at_head is None or at_head in possible, f"{where}: HEAD lost commits"
            assert eventually(lambda: not git_processes_in(a), timeout=60), where
            problems = fsck.check(a, git=True, repair=round % 2 == 1)
            assert not [p for p in problems if p.kind not in leftovers(lines)], (where, problems)
            # reopened: a merge the kill cut short is finished (b's records
            # may move on to what that merge received), then recovery
            with Store(a, git=True, watch="off") as store:
                reopened = {d["id"]: d for d in store.all("volumes")}
            assert split(reopened) == split(on_disk), where
            assert head_records(a) == reopened, where
            assert git(a, "status", "--porcelain").stdout == b"", where
            run = git(a, "fsck", "--strict", "--no-progress")
            assert run.returncode == 0 and b"error" not in run.stderr, (where, run.stderr)
            model = split(on_disk)

        with Store(a, git=True, remote="origin", watch="off") as store:
            store.sync()
            other.sync()
            latest = {id: versions[-1] for id, versions in pushed.items() if versions[-1]}
            for host in (store, other):
                assert {d["id"]: d for d in host.all("volumes")} == {**model, **latest}
    for repo in (a, b, remote):
        run = git(repo, "fsck", "--strict", "--no-progress")
        assert run.returncode == 0 and b"error" not in run.stderr, (repo, run.stderr)


KILLED_BEFORE_THE_BRANCH_MOVES = """
import os, signal, sys
from gitpersist import Store
from gitpersist.history.refs import Refs
set_if_equals = Refs.set_if_equals
def die(self, ref, old, new, message, **kwargs):
    if message.startswith("gitpersist sync:"):  # the received files are written, the branch not moved
        os.kill(os.getpid(), signal.SIGKILL)
    return set_if_equals(self, ref, old, new, message, **kwargs)
Refs.set_if_equals = die
Store(sys.argv[1], git=True, watch="off", remote="origin").sync()
"""


def test_sync_killed_before_the_branch_moves_loses_no_later_remote_change(tmp_path):
    """The received files are on disk but the branch did not move: the next
    open commits them (recovery).  That commit must not count as a later
    local change of those records: the remote deleting one of them after
    the crash still wins.

    The sync leaves a note in the git folder for that window, and every
    git open finishes the merge before recovery looks for changed files.
    """
    remote, a, b = tmp_path / "remote.git", tmp_path / "a", tmp_path / "b"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    for host in (a, b):
        subprocess.run(["git", "clone", "-q", str(remote), str(host)], check=True,
                       capture_output=True)
    options = {"git": True, "watch": "off", "remote": "origin"}
    with Store(b, author="b <b@example.com>", **options) as other:
        other.put("volumes", "v1", {"n": 1})
        other.sync()
        with Store(a, **options) as store:
            store.sync()
        other.put("volumes", "v1", {"n": 2})
        other.sync()
        run = subprocess.run([sys.executable, "-c", KILLED_BEFORE_THE_BRANCH_MOVES, str(a)],
                             env={**os.environ, **GIT_ENV}, capture_output=True)
        assert run.returncode == -signal.SIGKILL, run.stderr
        assert json.loads((a / paths.record_path("volumes", "v1")).read_text())["n"] == 2
        time.sleep(1.1)                     # commit times have one-second steps
        other.delete("volumes", "v1")       # the remote's latest change
        other.sync()
        time.sleep(1.1)
        with Store(a, **options) as store:  # recovery commits the received files
            store.sync()
            assert store.get("volumes", "v1") is None
        other.sync()
        assert other.get("volumes", "v1") is None
