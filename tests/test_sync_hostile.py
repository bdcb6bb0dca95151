"""A hostile remote (gitpersist.sync.received): anyone with push access to
the shared remote writes crafted commits there (git's plumbing: ``hash-object
--literally``, ``mktree``, ``commit-tree``, pushed from a second clone); the
victim's sync refuses what the store does not own, naming the path and the
commit, and moves no ref and writes no file.  The numbers are the items of
issue 13."""

from __future__ import annotations

import hashlib
import json
import os
import string

import pytest
from helpers import git, git_bytes, run_python
from hypothesis import given, settings
from hypothesis import strategies as st
from test_sync import META, clone, open_host, record_file, remote  # noqa: F401  (fixture)

# rewritten by every write or lock: this host's local state, not what a sync writes
LOCAL_STATE = {os.path.join(META, ".gitpersist", name) for name in ("changes", "write.holder")}

from gitpersist import Store, paths
from gitpersist.layout import FORMAT_FILE, GITIGNORE_FILE, META_GITIGNORE
from gitpersist.sync import SyncError
from gitpersist.sync.received import check

pytestmark = pytest.mark.usefixtures("no_git_identity")     # conftest

SECRETS = {"volumes": ["password"]}
PASSWORD = "HUNTER2-the-only-copy"
BLOB, LINK, GITLINK, TREE = "100644", "120000", "160000", "040000"

Spec = tuple[str, bytes]       # (mode, content: a blob's bytes, a link's target, a commit id)


def write_object(repo, kind: str, data: bytes) -> str:
    """An object of any content (``--literally``: git checks nothing)."""
    return git(repo, "hash-object", "-w", "--literally", "-t", kind, "--stdin",
               input=data, binary=True).decode().strip()


def tree_with(repo, tree: str | None, changes: dict[tuple[str, ...], Spec | None]) -> str:
    """`tree` (None: empty) with each path (a tuple of names, any names)
    set to its spec or removed; trees made with ``git mktree``, which takes
    names git's porcelain refuses (``..``, ``.git``)."""
    entries: dict[str, tuple[str, str, str]] = {}
    if tree is not None:
        for line in git_bytes(repo, "ls-tree", "-z", tree).split(b"\0"):
            if line:
                meta, name = line.split(b"\t", 1)
                mode, kind, id = meta.decode().split()
                entries[name.decode("utf-8", "surrogateescape")] = (mode, kind, id)
    below: dict[str, dict[tuple[str, ...], Spec | None]] = {}
    for path, spec in changes.items():
        if len(path) > 1:
            below.setdefault(path[0], {})[path[1:]] = spec
        elif spec is None:
            entries.pop(path[0], None)
        else:
            mode, data = spec
            if mode == GITLINK:     # any commit id: it need not exist
                entries[path[0]] = (mode, "commit", hashlib.sha1(data).hexdigest())
            else:
                entries[path[0]] = (mode, "blob", write_object(repo, "blob", data))
    for name, nested in below.items():
        old = entries.get(name)
        entries[name] = (TREE, "tree", tree_with(repo, old[2] if old and old[1] == "tree"
                                                 else None, nested))
    listing = b"".join(f"{mode} {kind} {id}\t".encode() + name.encode("utf-8", "surrogateescape")
                       + b"\0" for name, (mode, kind, id) in sorted(entries.items()))
    return git(repo, "mktree", "-z", "--missing", input=listing, binary=True).decode().strip()


def push_crafted(remote_path, changes: dict[str, Spec | None], *,
                 name: str = "mallory", base: str | None = None) -> str:
    """Mallory's commit on top of the remote's branch (or of `base`, then
    force-pushed), changing `changes` (work-tree paths, split at "/" only:
    ``meta/volumes/../x.json`` has a ``..`` tree), pushed; its id."""
    host = remote_path.parent / name
    if not host.exists():
        git(remote_path.parent, "clone", "-q", "--no-checkout", str(remote_path), name)
    git(host, "fetch", "-q", "origin")
    branch = git(host, "symbolic-ref", "--short", "HEAD").strip()
    head = base or git(host, "rev-parse", f"origin/{branch}").strip()
    tree = tree_with(host, git(host, "rev-parse", f"{head}^{{tree}}").strip(),
                     {tuple(path.split("/")): spec for path, spec in changes.items()})
    commit = git(host, "-c", "user.name=Mallory", "-c", "user.email=m@example.com",
                 "commit-tree", tree, "-p", head, "-m", "innocent").strip()
    git(host, "push", "-q", *(["--force"] if base else []), "origin",
        f"{commit}:refs/heads/{branch}")
    return commit


def snapshot(host) -> dict[str, bytes | str]:
    """Every file and link below the host's work tree but .git: path -> content."""
    found: dict[str, bytes | str] = {}
    for folder, dirs, names in os.walk(host):
        dirs[:] = [d for d in dirs if d != ".git" or folder != str(host)]
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, host)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif rel not in LOCAL_STATE:
                with open(path, "rb") as file:
                    found[rel] = file.read()
    return found


@pytest.fixture
def victim(remote):  # noqa: F811
    """Host a, with a secret, synced to the remote; its store open."""
    host = clone(remote, "a")
    store = open_host(host, secret_fields=SECRETS)
    store.put("volumes", "v1", {"size": 1, "password": PASSWORD})
    store.sync()
    yield host, store
    store.close()


def refused(host, store, commit: str, path: str, match: str = "") -> SyncError:
    """The sync refuses, naming `path` and `commit`; nothing moved or written."""
    head, before = git(host, "rev-parse", "HEAD"), snapshot(host)
    with pytest.raises(SyncError) as info:
        store.sync()
    message = str(info.value)
    assert path in message and commit[:12] in message, message
    assert match in message, message
    assert git(host, "rev-parse", "HEAD") == head
    assert snapshot(host) == before
    assert store.get("volumes", "v1")["password"] == PASSWORD
    return info.value


# -- 1. the secrets folder -----------------------------------------------------

@pytest.mark.parametrize("spec", [
    ("secrets/key", (BLOB, b"attacker's key")),
    ("secrets/volumes/" + record_file("volumes", "v1").split("/", 2)[2],
     (BLOB, b'{"password": "ATTACKER"}')),
    ("secrets", (LINK, b"/tmp")),
], ids=["key", "side-file", "symlink"])
def test_1_a_remote_secrets_entry_is_refused(victim, remote, spec):  # noqa: F811
    host, store = victim
    relpath, entry = spec
    path = f"{META}/.gitpersist/{relpath}"
    commit = push_crafted(remote, {path: entry})
    refused(host, store, commit, path)
    assert git(host, "ls-files", f"{META}/.gitpersist/secrets") == ""


# -- 2. the store's .gitignore -------------------------------------------------

@pytest.mark.parametrize("content", [b"", None], ids=["ignores-nothing", "deleted"])
def test_2_a_loosened_gitignore_is_refused(victim, remote, content):  # noqa: F811
    host, store = victim
    path = f"{META}/.gitpersist/.gitignore"
    commit = push_crafted(remote, {path: None if content is None else (BLOB, content)})
    refused(host, store, commit, path)
    assert git(host, "status", "--porcelain", "--untracked-files=all") == ""


# -- 3. the lock file ----------------------------------------------------------

def test_3_a_remote_lock_file_is_refused(victim, remote):  # noqa: F811
    host, store = victim
    path = f"{META}/.gitpersist/write.lock"
    commit = push_crafted(remote, {path: (BLOB, b"")})
    refused(host, store, commit, path)


# -- 4. symlinks ---------------------------------------------------------------

@pytest.mark.parametrize("where", ["shard", "record", "type", "store"])
def test_4_a_remote_symlink_at_any_depth_is_refused(victim, remote, tmp_path, where):  # noqa: F811
    host, store = victim
    record = record_file("volumes", "v2")
    path = {"shard": record.rsplit("/", 1)[0], "record": record,
            "type": f"{META}/volumes", "store": META}[where]
    commit = push_crafted(remote, {path: (LINK, str(tmp_path).encode())})
    refused(host, store, commit, path, "symlink")


# -- 5. names that leave their folder --------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", ".git", ".GIT"])
def test_5_a_remote_entry_named_dotdot_is_refused(victim, remote, name):  # noqa: F811
    host, store = victim
    path = f"{META}/volumes/{name}/config.json"
    commit = push_crafted(remote, {path: (BLOB, b'{"id": "config"}')})
    refused(host, store, commit, path)
    assert not (host / "config.json").exists() and not (host / META / "config.json").exists()


def test_5_a_store_at_the_repository_root_refuses_dotdot_and_keeps_git_files(remote):  # noqa: F811
    host = clone(remote, "root")
    with Store(host, git=True, watch="off", fsync=False, remote="origin",
               author="root <r@example.com>") as store:
        store.put("volumes", "v1", {"size": 1})
        store.sync()
        commit = push_crafted(remote, {"volumes/../config.json": (BLOB, b"{}")})
        with pytest.raises(SyncError, match=r"volumes/\.\./config\.json.*" + commit):
            store.sync()
        commit = push_crafted(remote, {"volumes/../config.json": None,
                                       "README": (BLOB, b"ops notes\n")})
        store.sync()
        assert (host / "README").read_bytes() == b"ops notes\n"      # git's file
    assert not (host / "config.json").exists()


# -- 6. the format file ------------------------------------------------------------

@pytest.mark.parametrize("content, match", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a gitpersist format file"),
    (json.dumps({"format": 1, "secret_fields": {"volumes": 5}}).encode(), "secret_fields"),
    (json.dumps({"format": 99, "id": "gitpersist"}).encode(), "newer"),
], ids=["not-json", "list", "bad-declaration", "newer-version"])
def test_6_a_hostile_format_file_refuses_the_sync_not_later_opens(victim, remote, content,  # noqa: F811
                                                                  match):
    host, store = victim
    path = f"{META}/.gitpersist/format.json"
    commit = push_crafted(remote, {path: (BLOB, content)})
    refused(host, store, commit, path, match)
    store.close()
    with Store(host / META, git=True, watch="off") as again:     # every open still works
        assert again.get("volumes", "v1")["password"] == PASSWORD


# -- 7. a deleted or shrunk format file --------------------------------------------

@pytest.mark.parametrize("content", [None, json.dumps({"format": 1}).encode()],
                         ids=["deleted", "shrunk"])
def test_7_declarations_only_grow_whatever_the_remote_does(victim, remote, content):  # noqa: F811
    host, store = victim
    path = f"{META}/.gitpersist/format.json"
    push_crafted(remote, {path: None if content is None else (BLOB, content)})
    store.sync()
    store.close()
    for repo in (host, remote):         # the merge re-added it, and the push sent it
        declared = json.loads(git(repo, "show", f"HEAD:{path}"))
        assert declared["secret_fields"] == SECRETS
    with Store(host / META, git=True, watch="off") as generic:     # no secret_fields option
        generic.put("volumes", "v2", {"password": "NEW-SECRET"})
    assert "NEW-SECRET" not in git(host, "log", "-p", "--all")
    assert "NEW-SECRET" not in (host / record_file("volumes", "v2")).read_text()


def test_7_fields_a_remote_declares_are_reported_by_the_sync(victim, remote, caplog):  # noqa: F811
    """Anyone who can push can declare a field secret; the host adopts it
    (else its own writes would push the value), and the report and the log
    say so: from then on that field no longer syncs."""
    host, store = victim
    path = f"{META}/.gitpersist/format.json"
    declared = json.loads(git(host, "show", f"HEAD:{path}"))
    declared["secret_fields"] = {**declared["secret_fields"], "volumes": sorted(
        {*declared["secret_fields"].get("volumes", []), "size"})}
    push_crafted(remote, {path: (BLOB, json.dumps(declared).encode())})
    with caplog.at_level("WARNING", logger="gitpersist"):
        report = store.sync()
    assert report.declared == {"volumes": ["size"]}
    assert "volumes.size" in report.summary()
    assert "the remote declared secret fields" in caplog.text and "volumes.size" in caplog.text
    assert store.get("volumes", "v1")["size"] == 1         # kept, now on this host only


# -- 10. an executable record ------------------------------------------------------

def test_10_a_record_received_with_mode_100755_is_refused(victim, remote):  # noqa: F811
    host, store = victim
    path = record_file("volumes", "v9")
    commit = push_crafted(remote, {path: ("100755", b'{"id": "v9"}')})
    refused(host, store, commit, path, "100755")
    assert git(host, "status", "--porcelain") == ""


def test_gitlinks_are_refused(victim, remote):  # noqa: F811
    host, store = victim
    path = record_file("volumes", "v9")
    commit = push_crafted(remote, {path: (GITLINK, b"a submodule")})
    refused(host, store, commit, path, "gitlink")


def test_a_good_remote_commit_still_syncs(victim, remote):  # noqa: F811
    host, store = victim
    path = record_file("volumes", "v9")
    push_crafted(remote, {path: (BLOB, b'{"id":"v9","size":9}')})
    assert store.sync().received == [path.split("/", 1)[1]]
    assert store.get("volumes", "v9") == {"id": "v9", "size": 9}


# -- property tests: hostile entries under the store's path --------------------------

NAMES = st.sampled_from(["..", ".", ".git", ".gitpersist", "secrets", "key", "write.lock",
                         "changes", "format.json", ".gitignore", "volumes", "9b", "v1.json",
                         "x.json", "Volumes", "con", "..json", "~", "a b"]) | st.text(
    string.ascii_lowercase + string.digits + "._-~", min_size=1, max_size=6)
MODES = st.sampled_from([BLOB, BLOB, BLOB, "100755", LINK, GITLINK])
CONTENTS = st.sampled_from([b"{}", b"junk", META_GITIGNORE, b'{"format": 1}',
                            b'{"format": 1, "secret_fields": {"volumes": ["size"]}}',
                            b"/etc", b"../.."])
ENTRIES = st.dictionaries(st.lists(NAMES, min_size=1, max_size=4).map("/".join),
                          st.tuples(MODES, CONTENTS), min_size=1, max_size=3)


def acceptable(relpath: str, mode: str, data: bytes) -> bool:
    """What the store may take from a remote (the oracle, from the rules)."""
    if mode != BLOB or any(p in ("", ".", "..") or p.lower() == ".git"
                           for p in relpath.split("/")):
        return False
    if relpath == GITIGNORE_FILE:
        return data == META_GITIGNORE
    if relpath == FORMAT_FILE:
        return data.startswith(b'{"format": 1')
    return paths.split_record_path(relpath) is not None


def as_entry(mode: str, data: bytes) -> tuple[int, str]:
    return int(mode, 8), "%040x" % (hash((mode, data)) % 16 ** 40)


@settings(max_examples=300, deadline=None)
@given(ENTRIES, st.sampled_from(["", "meta/"]))
def test_check_accepts_exactly_the_stores_own_files(entries, prefix):
    """The rule itself, without git: every entry below the store's path is
    accepted only if the store would write it; a refusal names the path
    and the commit."""
    contents = {as_entry(mode, data)[1]: data for mode, data in entries.values()}

    class Blobs:
        def blobs(self, ids):
            return {i: contents[i] for i in ids}

        def write_blob(self, data):
            raise AssertionError("check writes nothing")

    diff = {prefix + path: (None, as_entry(mode, data)) for path, (mode, data) in entries.items()}
    bad = [path for path, (mode, data) in entries.items()
           if not acceptable(path, mode, data) and (prefix or path.split("/")[0] in (
               ".gitpersist", ".git", ".GIT", "..", ".") or paths.is_type(path.split("/")[0])
               and ("/" in path or mode == LINK))]
    try:
        check(diff, prefix=prefix, commit="c0ffee" * 6 + "0000", remote="origin",
              blobs=Blobs())
    except SyncError as exc:
        assert "c0ffee" in str(exc)
        assert any(f"refused {prefix}{path}" in str(exc) for path in bad), (str(exc), bad)
    else:
        assert bad == []


def test_hostile_entries_pushed_by_a_remote_never_reach_the_store(tmp_path_factory):
    """Crafted commits of generated entries below the store's path, each
    pushed over the last good commit: the sync refuses it naming the path
    and the commit and changes nothing, or (only store files in it) takes
    it; never a symlink, a secret or a lock file lands."""
    remote_path = tmp_path_factory.mktemp("hostile") / "remote.git"
    git(remote_path.parent, "init", "-q", "--bare", str(remote_path))
    host = clone(remote_path, "a")
    with open_host(host, secret_fields=SECRETS) as store:
        store.put("volumes", "v1", {"size": 1, "password": PASSWORD})
        store.sync()
        key = (host / META / ".gitpersist" / "secrets" / "key").read_bytes()

        @settings(max_examples=15, deadline=None)
        @given(ENTRIES)
        def sync_with(entries):
            head, before = git(host, "rev-parse", "HEAD").strip(), snapshot(host)
            commit = push_crafted(remote_path, {f"{META}/{p}": spec
                                                for p, spec in entries.items()}, base=head)
            try:
                store.sync()
            except SyncError as exc:
                assert commit in str(exc) and f"refused {META}/" in str(exc), str(exc)
                assert git(host, "rev-parse", "HEAD").strip() == head
                assert snapshot(host) == before
            else:
                assert all(acceptable(p, mode, data) for p, (mode, data) in entries.items())
            assert (host / META / ".gitpersist" / "secrets" / "key").read_bytes() == key
            assert store.get("volumes", "v1")["password"] == PASSWORD
            assert not any(isinstance(v, str) for v in snapshot(host).values())   # no links
            assert git(host, "ls-files", f"{META}/.gitpersist") == \
                f"{META}/.gitpersist/.gitignore\n{META}/.gitpersist/format.json\n"
        sync_with()


# -- 8. a declaration received by another process --------------------------------------

SYNC_IN_ANOTHER_PROCESS = """
    import sys
    from gitpersist import cli
    from gitpersist.changelog import ChangeLog
    if sys.argv[2] == "log-replaced":
        ChangeLog.MAX_SIZE = 1      # its own writes replace the change log
    sys.exit(cli.main(["--path", sys.argv[1], "sync"]))
    """


@pytest.mark.parametrize("how", ["log-replaced", "git-pull"])
def test_8_a_declaration_received_by_another_process_holds_at_the_next_write(remote, how):  # noqa: F811
    """A process already running on host a (no secret_fields option, no
    watcher) while the declaration host b pushed reaches a's work tree by
    ``gitpersist sync`` in another process (whose later writes replaced
    the change log) or by a plain ``git pull``: the running process's very
    next write keeps the field out of its record file and out of git."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(a) as running:
        running.put("volumes", "v1", {"size": 1})
        running.sync()
        with open_host(b, secret_fields=SECRETS) as store_b:
            store_b.sync()
            store_b.put("volumes", "v1", {"size": 2})
            store_b.sync()
        if how == "git-pull":
            git(a, "-c", "user.name=Ops", "-c", "user.email=o@x", "pull", "-q", "--no-rebase")
        else:
            run_python(SYNC_IN_ANOTHER_PROCESS, str(a / META), how)
        running.put("volumes", "v3", {"password": "A-SECRET"})
        assert running.get("volumes", "v3")["password"] == "A-SECRET"
        running.sync()
    assert "A-SECRET" not in (a / record_file("volumes", "v3")).read_text()
    for repo in (a, remote):
        assert "A-SECRET" not in git(repo, "log", "-p", "--all")


# -- 9. a first declaration cut short ------------------------------------------------

KILL_DURING_SPLIT = """
    import os, signal, sys
    from gitpersist import Store
    done = []
    put = Store.put
    def dying_put(self, type, id, document, **kwargs):
        if "secret fields kept local" in (kwargs.get("message") or ""):
            if len(done) == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)
            done.append(id)
        return put(self, type, id, document, **kwargs)
    Store.put = dying_put
    Store(sys.argv[1], git=sys.argv[3] == "git", watch="off",
          secret_fields={"volumes": ["password"]})
    """


@pytest.mark.parametrize("killed_after", [0, 3, 9])
@pytest.mark.parametrize("first", ["plain", "git"])
def test_9_a_first_declaration_killed_while_splitting_never_commits_a_secret(
        tmp_path, killed_after, first):
    """An existing store (plain, or in git from before the declaration) is
    first opened declaring a secret field, and that open is killed while it
    moves the field out of the records: the next git open (a generic one,
    without the option) finishes the split before it commits anything."""
    root = tmp_path / "store"
    with Store(root, git=first == "git", watch="off", fsync=False) as store:
        for n in range(10):
            store.put("volumes", f"v{n}", {"size": n, "password": f"PW-{n}-SECRET"})
    history = git(root, "log", "-p", "--all") if first == "git" else ""
    died = run_python(KILL_DURING_SPLIT, str(root), str(killed_after), first, check=False)
    assert died.returncode == -9, died.stderr
    with Store(root, git=True, watch="off") as generic:
        assert generic.secret_fields == {"volumes": ["password"]}
        assert [v["password"] for v in generic.all("volumes")] == [
            f"PW-{n}-SECRET" for n in range(10)]
        generic.put("volumes", "v1", {"size": 11, "password": "PW-1-SECRET"})
    added = git(root, "log", "-p", "--all")[:-len(history) or None].splitlines()
    assert [line for line in added if "SECRET" in line and not line.startswith("-")] == []
    for n in range(10):
        assert "SECRET" not in (root / paths.record_path("volumes", f"v{n}")).read_text()
    assert not (root / ".gitpersist" / "splitting").exists()


def test_files_outside_the_store_are_gits_whatever_their_names():
    class NoBlobs:
        def blobs(self, ids):
            assert not ids, "nothing outside the store is read"
            return {}

        def write_blob(self, data):
            raise AssertionError
    outside = {name: (None, (int(LINK, 8), "0" * 40)) for name in [
        "abcde.gitpersist/format.json", "other/.gitpersist/secrets/key", "README", "x/../y"]}
    check(outside, prefix="meta/", commit="c" * 40, remote="origin", blobs=NoBlobs())


KILL_DURING_ADOPT = """
    import os, signal, sys
    from gitpersist import Store
    put = Store.put
    def dying_put(self, type, id, document, **kwargs):
        if "secret fields kept local" in (kwargs.get("message") or ""):
            os.kill(os.getpid(), signal.SIGKILL)
        return put(self, type, id, document, **kwargs)
    Store.put = dying_put
    Store(sys.argv[1], git=True, watch="off", remote="origin").sync()
    """


def test_9_a_received_declaration_killed_while_splitting_is_finished_at_the_next_open(
        remote):  # noqa: F811
    """Host b has records carrying a field host a then declares secret; b's
    sync adopts the declaration and is killed while it moves the field out
    of b's records: b's next open finishes that split."""
    a, b = clone(remote, "a"), clone(remote, "b")
    with open_host(b) as store_b:
        for n in range(3):
            store_b.put("volumes", f"v{n}", {"size": n, "password": f"OLD-{n}"})
        store_b.sync()
    with open_host(a, secret_fields=SECRETS) as store_a:
        store_a.sync()
    died = run_python(KILL_DURING_ADOPT, str(b / META), check=False)
    assert died.returncode == -9, died.stderr
    with open_host(b) as again:
        assert again.secret_fields == SECRETS
        assert again.get("volumes", "v2")["password"] == "OLD-2"
    for n in range(3):
        assert "OLD" not in (b / record_file("volumes", f"v{n}")).read_text()
    assert not (b / META / ".gitpersist" / "splitting").exists()
