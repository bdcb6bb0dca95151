"""gitpersist.fsck: every kind of problem is found, named, and repaired
only when that is safe."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import filelock
import pytest

from gitpersist import Store, fsck, paths
from gitpersist.files import HOST
from gitpersist.cinder import schema
from gitpersist.fsck import Problem
from helpers import git


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    with Store(path, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
        store.put("snapshots", "s1", {"volume_id": "v1"})
        store.put("connections", "c1", {"volume_id": "v1"})
    return path


def record_file(root: Path, type: str, id: str) -> Path:
    return root.joinpath(*paths.record_path(type, id).split("/"))


def found(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(problem.kind, problem.path) for problem in problems}


def test_a_clean_store_has_no_problems(root):
    assert fsck.check(root) == []
    assert fsck.clean([])


@pytest.mark.parametrize("content, reason", [
    (b"{", "not valid JSON"),
    (b"[1]", "not a JSON object"),
    (b'{"size": 1}', 'no string "id" field'),
    (b'{"id": 7}', 'no string "id" field'),
])
def test_records_that_do_not_parse(root, content, reason):
    record_file(root, "volumes", "v1").write_bytes(content)
    problems = fsck.check(root, rules=schema.RULES)
    relpath = paths.record_path("volumes", "v1")
    corrupt = [p for p in problems if p.kind == "corrupt"]
    assert len(corrupt) == 1 and corrupt[0].path == relpath
    assert corrupt[0].message.startswith(reason)
    # the references to the unreadable volume dangle too
    assert found(problems) - {("corrupt", relpath)} == {
        ("dangling-reference", paths.record_path("snapshots", "s1")),
        ("dangling-reference", paths.record_path("connections", "c1"))}


def test_a_record_at_the_wrong_path(root):
    record_file(root, "volumes", "v1").write_text('{"id": "v2", "size": 1}')
    [problem, *_] = fsck.check(root)
    assert problem == Problem("id-mismatch", paths.record_path("volumes", "v1"),
                              f"holds id 'v2', which belongs at "
                              f"{paths.record_path('volumes', 'v2')}")


def test_dangling_references_of_snapshots_and_connections(root):
    with Store(root, watch="off") as store:
        store.put("connections", "c2", {"volume_id": "gone"})
        store.put("snapshots", "s2", {"volume_id": None})      # no reference at all
        store.put("things", "t1", {"volume_id": "gone"})       # not a reference type
    assert fsck.check(root, rules=schema.RULES) == [Problem(
        "dangling-reference", paths.record_path("connections", "c2"),
        "volume_id 'gone' names no record in volumes")]


def test_soft_deleted_records_name_nothing_and_are_named_by_none(root):
    """soft_deletes: a live snapshot of a soft-deleted volume dangles; a
    soft-deleted connection of a soft-deleted volume does not."""
    with Store(root, watch="off") as store:
        store.put("volumes", "v1", {"size": 1, "deleted": True})
        store.put("connections", "c1", {"volume_id": "v1", "deleted": True})
    assert fsck.check(root, rules=schema.RULES) == [Problem(
        "dangling-reference", paths.record_path("snapshots", "s1"),
        "volume_id 'v1' names no record in volumes")]


def test_without_rules_no_reference_is_checked(root):
    """The generic default: fsck knows no application's references."""
    with Store(root, watch="off") as store:
        store.put("connections", "c2", {"volume_id": "gone"})
        store.put("volumes", "v1", {"size": 1, "deleted": True})
    assert fsck.check(root) == []


class PetRules:
    """An application's own rules: a pet's owner is a person, and
    archived records take no part."""
    references = {("pets", "owner"): "people"}

    @staticmethod
    def live(document):
        return not document.get("archived")


def test_an_applications_own_reference_rules(tmp_path):
    root = tmp_path / "store"
    with Store(root, watch="off") as store:
        store.put("people", "ann", {})
        store.put("people", "bob", {"archived": True})
        store.put("pets", "rex", {"owner": "ann"})
        store.put("pets", "tom", {"owner": "bob"})        # an archived owner
        store.put("pets", "old", {"owner": "nobody", "archived": True})
        store.put("pets", "odd", {"owner": 7})            # not a name: not a reference
    assert fsck.check(root, rules=PetRules()) == [Problem(
        "dangling-reference", paths.record_path("pets", "tom"),
        "owner 'bob' names no record in people")]


def test_unknown_files_and_folders_at_every_level(root):
    shard = record_file(root, "volumes", "v1").parent
    (root / "README.md").write_text("?")
    (root / "Not-A-Type").mkdir()
    (root / "volumes" / "zz").mkdir()
    (shard / "notes.txt").write_text("?")
    (shard / "sub").mkdir()
    (root / ".gitpersist" / "extra").write_text("?")
    problems = fsck.check(root)
    assert found(problems) == {
        ("unknown-file", "README.md"), ("unknown-file", "Not-A-Type"),
        ("unknown-file", "volumes/zz"), ("unknown-file", f"volumes/{shard.name}/notes.txt"),
        ("unknown-file", f"volumes/{shard.name}/sub"),
        ("unknown-file", ".gitpersist/extra")}
    # repair removes none of them: they may be someone's
    assert all(not p.repaired for p in fsck.check(root, repair=True))
    assert (root / "README.md").exists() and (shard / "notes.txt").exists()


def test_symlinks_are_reported_and_never_followed(root, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text('{"id": "x"}')
    shard = record_file(root, "volumes", "v1").parent
    (shard / "x.json").symlink_to(outside)
    (root / "linked").symlink_to(tmp_path)
    problems = fsck.check(root, repair=True)
    assert found(problems) == {("symlink", f"volumes/{shard.name}/x.json"),
                               ("symlink", "linked")}
    assert not any(p.repaired for p in problems)
    assert (shard / "x.json").is_symlink()


def test_stale_temp_files_are_removed_live_ones_are_a_note(root):
    shard = record_file(root, "volumes", "v1").parent
    stale = shard / f".v9.json.999999999.{HOST}.0badcafe.tmp"
    live = shard / f".v8.json.{os.getpid()}.{HOST}.0badcafe.tmp"
    stale.write_text("half")
    live.write_text("half")
    problems = fsck.check(root)
    assert found(problems) == {("stale-temp", f"volumes/{shard.name}/{stale.name}"),
                               ("write-in-progress", f"volumes/{shard.name}/{live.name}")}
    assert [p.note for p in problems if p.kind == "write-in-progress"] == [True]
    assert not fsck.clean(problems)
    problems = fsck.check(root, repair=True)
    assert [p.repaired for p in problems if p.kind == "stale-temp"] == [True]
    assert not stale.exists() and live.exists()
    assert fsck.clean(problems)


def test_loose_permissions_are_tightened(root):
    record = record_file(root, "volumes", "v1")
    record.chmod(0o664)
    record.parent.chmod(0o755)
    (root / ".gitpersist" / "format.json").chmod(0o644)
    problems = fsck.check(root)
    assert {(p.path, p.message) for p in problems} == {
        (paths.record_path("volumes", "v1"), "mode 0664 is looser than 0600"),
        (f"volumes/{record.parent.name}", "mode 0755 is looser than 0700"),
        (".gitpersist/format.json", "mode 0644 is looser than 0600")}
    assert all(p.repaired for p in fsck.check(root, repair=True))
    assert (record.stat().st_mode & 0o777, record.parent.stat().st_mode & 0o777) == \
        (0o600, 0o700)
    assert fsck.check(root) == []


def test_modes_are_the_stores_modes(root):
    record_file(root, "volumes", "v1").chmod(0o640)
    assert fsck.check(root, file_mode=0o640) == []


def test_empty_folders_are_notes_and_repair_removes_them(root):
    with Store(root, watch="off") as store:
        store.delete("connections", "c1")
    shard = record_file(root, "connections", "c1").parent
    problems = fsck.check(root)
    assert problems == [Problem("empty-folder", f"connections/{shard.name}",
                                "empty folder (left after deletions)",
                                repairable=True, note=True)]
    assert fsck.clean(problems)
    problems = fsck.check(root, repair=True)
    assert found(problems) == {("empty-folder", f"connections/{shard.name}"),
                               ("empty-folder", "connections")}
    assert not (root / "connections").exists()


@pytest.mark.parametrize("content, message", [
    (None, "missing: the store's format is unknown"),
    (b"nope", "not a gitpersist format file"),
    (b'{"format": "1"}', "format '1' is not a format version"),
    (b'{"format": 99}', "format 99 is newer than this gitpersist understands (1); "
                        "upgrade gitpersist"),
])
def test_the_format_file(root, content, message):
    format_file = root / ".gitpersist" / "format.json"
    if content is None:
        format_file.unlink()
    else:
        format_file.write_bytes(content)
    assert fsck.check(root) == [Problem("format", ".gitpersist/format.json", message)]


def test_a_held_write_lock_is_a_note_and_repair_waits_for_it(root):
    lock = filelock.FileLock(str(root / ".gitpersist" / "write.lock"), thread_local=False)
    with lock:
        problems = fsck.check(root)
        # this process holds it, and recorded itself as holder when it made
        # the store: named, with that time (tests/test_lock_holder.py)
        [problem] = problems
        assert (problem.kind, problem.path, problem.note) == \
            ("locked", ".gitpersist/write.lock", True)
        assert re.fullmatch(rf"held by a running writer \(pid {os.getpid()} on host .+ since "
                            r".+ UTC\): what follows may change while it is checked",
                            problem.message), problem.message
        with pytest.raises(fsck.LockTimeout, match="could not lock .*write.lock within "
                                                   "0.1 s to repair the store"):
            fsck.check(root, repair=True, lock_timeout=0.1)


def test_progress_counts_shard_folders(root):
    calls = []
    fsck.check(root, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_not_a_folder(tmp_path):
    with pytest.raises(fsck.StoreError, match="is not a folder"):
        fsck.check(tmp_path / "nothing")


# -- git ---------------------------------------------------------------------

@pytest.fixture
def git_root(tmp_path: Path) -> Path:
    path = tmp_path / "gstore"
    with Store(path, git=True, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
        store.put("volumes", "v2", {"size": 2})
    return path


def test_uncommitted_changes_are_found_and_repair_commits_them(git_root):
    record_file(git_root, "volumes", "v1").write_text('{"id": "v1", "size": 5}\n')
    record_file(git_root, "volumes", "v2").unlink()
    with Store(git_root, watch="off") as store:         # a writer without git
        store.put("volumes", "v3", {"size": 3})
    problems = fsck.check(git_root)
    assert {(p.kind, p.path, p.message) for p in problems if p.kind == "uncommitted"} == {
        ("uncommitted", paths.record_path("volumes", "v1"), "modified since the last commit"),
        ("uncommitted", paths.record_path("volumes", "v2"), "deleted since the last commit"),
        ("uncommitted", paths.record_path("volumes", "v3"), "new since the last commit")}
    assert all(p.repairable and not p.repaired for p in problems if p.kind == "uncommitted")
    head = git(git_root, "rev-parse", "HEAD")
    problems = fsck.check(git_root, repair=True)
    assert [p.repaired for p in problems if p.kind == "uncommitted"] == [True] * 3
    assert git(git_root, "rev-parse", "HEAD") != head
    assert git(git_root, "status", "--porcelain") == ""
    assert fsck.clean(fsck.check(git_root))


def test_repair_never_commits_a_record_it_reports_corrupt(git_root):
    """Issue 16 item 4: the corrupt file stays uncommitted (a sync would
    carry it everywhere); the good change is committed as the repair's."""
    broken = record_file(git_root, "volumes", "v1")
    broken.write_text('{"id": "v1", "size":')
    record_file(git_root, "volumes", "v2").write_text('{"id": "v2", "size": 7}\n')
    problems = fsck.check(git_root, repair=True)
    uncommitted = {p.path: p for p in problems if p.kind == "uncommitted"}
    v1, v2 = paths.record_path("volumes", "v1"), paths.record_path("volumes", "v2")
    assert not uncommitted[v1].repaired and not uncommitted[v1].repairable
    assert "not committed: it is reported broken" in uncommitted[v1].message
    assert uncommitted[v2].repaired
    assert git(git_root, "log", "-1", "--format=%s") == (
        "fsck --repair: commit the store files that differed from HEAD\n")
    assert git(git_root, "show", "--format=", "--name-only", "HEAD").split() == [v2]
    assert git(git_root, "status", "--porcelain", "--", v1).strip()
    assert not fsck.clean(problems)


def test_a_store_in_an_ops_repository_with_odd_names_and_gitignore(tmp_path):
    repo = tmp_path / "ops"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("*.json\n")       # the team ignores JSON files
    root = repo / "meta [x]*"
    with Store(root, git=True, watch="off") as store:
        store.put("volumes", "v1", {"size": 1})
    assert fsck.check(root) == []
    record_file(root, "volumes", "v1").write_text('{"id": "v1", "size": 2}\n')
    problems = fsck.check(root)
    assert problems == [Problem("uncommitted", paths.record_path("volumes", "v1"),
                                "modified since the last commit", repairable=True)]
    with Store(root, watch="off") as store:
        store.put("volumes", "v2", {"size": 1})
    assert [p.message for p in fsck.check(root)] == [
        "modified since the last commit", "new (ignored by git) since the last commit"]
    assert all(p.repaired for p in fsck.check(root, repair=True))
    assert fsck.check(root) == []


def test_a_store_without_git_is_not_checked_against_git(root):
    git(root, "init", "-q")        # a repository appears, but the store never used it
    assert fsck.check(root, git=False) == []
    assert fsck.check(root, git=True)[0].kind == "uncommitted"


def test_a_leftover_index_lock_is_reported_not_removed(git_root):
    lock = git_root / ".git" / "index.lock"
    lock.write_text("")
    problems = fsck.check(git_root, repair=True)
    assert found(problems) == {("git-lock", ".git/index.lock")}
    assert lock.exists()


def test_git_fsck_problems_are_reported(git_root):
    blob = git(git_root, "rev-parse", f"HEAD:{paths.record_path('volumes', 'v1')}").strip()
    # A broken loose copy of the blob (history writes packs; git reads a
    # loose object first, so fsck finds this one corrupt).
    obj = git_root / ".git" / "objects" / blob[:2] / blob[2:]
    obj.parent.mkdir(exist_ok=True)
    if obj.exists():
        obj.chmod(0o644)
    obj.write_bytes(b"garbage")
    problems = [p for p in fsck.check(git_root) if p.kind == "git-fsck"]
    assert problems and all(p.path == ".git" for p in problems)
    assert any(blob in p.message for p in problems), problems


def test_repair_while_another_thread_writes(git_root):
    """Repair holds the store's lock: a concurrent writer's files are
    never half-seen as leftovers."""
    stop = threading.Event()

    def write():
        with Store(git_root, git=True, watch="off") as store:
            n = 0
            while not stop.is_set():
                store.put("volumes", f"w{n % 5}", {"n": n})
                n += 1
    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(3):
            problems = fsck.check(git_root, repair=True)
            assert not [p for p in problems if p.kind in ("stale-temp", "corrupt")]
    finally:
        stop.set()
        writer.join()
    assert fsck.clean(fsck.check(git_root, repair=True))


# -- fsck beside a busy store and a clone (issue 14) ----------------------------------

def test_right_after_a_commit_nothing_is_uncommitted(tmp_path):
    """The index follows a commit half a second later (much later here):
    fsck compares the files with HEAD, not with the index."""
    root = tmp_path / "store"
    with Store(root, git=True, watch="off") as store:
        store.history.index_delay = 3600
        store.put("volumes", "v1", {"size": 1})
        store.put("volumes", "v2", {"size": 2})
        store.flush()
        store.put("volumes", "v1", {"size": 3})      # modified, committed
        store.delete("volumes", "v2")                 # deleted, committed
        store.put("volumes", "v3", {"size": 1})      # new, committed
        assert git(root, "status", "--porcelain") != ""        # the index lags
        assert [p.kind for p in fsck.check(root)] == ["empty-folder"]     # v2's shard
        record_file(root, "volumes", "v1").write_text('{"id": "v1", "size": 9}\n')
        assert [(p.kind, p.message) for p in fsck.check(root)] == [
            ("empty-folder", "empty folder (left after deletions)"),
            ("uncommitted", "modified since the last commit")]


def test_a_git_clone_is_reported_once_and_repair_tightens_it(git_root, tmp_path):
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(git_root), str(clone))
    os.chmod(clone, 0o755)      # the root's own mode is the user's business
    problems = fsck.check(clone)
    assert [(p.kind, p.path) for p in problems] == [("permissions", ".")]
    assert re.fullmatch(r"checked out by git with mode 0644: \d+ files and folders are "
                        r"looser than 0600 \(folders 0700\); `fsck --repair` tightens",
                        problems[0].message), problems[0].message
    assert [p.repaired for p in fsck.check(clone, repair=True)] == [True]
    assert fsck.check(clone) == []
    assert (record_file(clone, "volumes", "v1").stat().st_mode & 0o777) == 0o600
