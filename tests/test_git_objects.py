"""gitpersist.history.objects: ids, trees and commits git would make, read
back through gitdb, written as one pack git accepts."""

from __future__ import annotations

import os
import subprocess
import time

import git as gitpython
import pytest
from helpers import fsck_clean, git, git_bytes

from gitpersist import HistoryError
from gitpersist.files import HOST
from gitpersist.history.objects import (FILE_MODE, TREE_MODE, ObjectStore, Tree, commit_data,
                                        nest, object_id)

AUTHOR = gitpython.Actor("Störe Writer", "store@example.com")


@pytest.fixture
def store(git_repo, git_tunables):
    repo = gitpython.Repo(git_repo)
    yield ObjectStore(repo, str(git_repo / ".git" / "objects"), git_tunables)
    repo.close()


def test_object_ids_are_gits(git_repo):
    for data in (b"", b"hello\n", bytes(range(256)) * 10):
        run = subprocess.run(["git", "hash-object", "--stdin"], input=data, cwd=git_repo,
                             capture_output=True, check=True)
        assert object_id(b"blob", data).hex() == run.stdout.decode().strip()


def test_a_changed_tree_is_the_tree_git_makes(git_repo, store):
    blob = object_id(b"blob", b"x\n").hex()
    # git's order: a folder "a" sorts as "a/", after "a.b" and before "a0"
    names = {"a0": blob, "a.b": blob, "z": blob, "é x.json": blob}
    tree = Tree.empty().changed({name: (FILE_MODE, bytes.fromhex(i)) for name, i in names.items()})
    sub = store.write_tree(tree)
    tree = tree.changed({"a": (TREE_MODE, sub), "z": None})
    made = "".join(f"100644 blob {blob}\t{name}\n" for name in names if name != "z")
    made += f"040000 tree {sub.hex()}\ta\n"
    assert store.write_tree(tree).hex() == git_bytes(git_repo, "mktree", "--missing",
                                                     input=made.encode()).decode().strip()
    again = Tree.parse(tree.data())
    assert again.entries == tree.entries and again.data() == tree.data()
    assert list(again.entries) == ["a.b", "a", "a0", "é x.json"]


def test_a_commit_is_byte_for_byte_what_git_commit_tree_writes(git_repo):
    tree = git(git_repo, "rev-parse", "HEAD^{tree}").strip()
    parent = git(git_repo, "rev-parse", "HEAD").strip()
    now = int(time.time())
    ours = commit_data(bytes.fromhex(tree), [parent], AUTHOR, "subject\n\nbody é\n", now)
    tz = time.strftime("%z", time.localtime(now))
    env = {**os.environ, **{f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                            for what, value in (("NAME", AUTHOR.name), ("EMAIL", AUTHOR.email),
                                                ("DATE", f"@{now} {tz}"))}}
    theirs = subprocess.run(["git", "commit-tree", tree, "-p", parent],
                            input="subject\n\nbody é\n".encode(), cwd=git_repo, env=env,
                            capture_output=True, check=True).stdout
    assert object_id(b"commit", ours).hex() == theirs.decode().strip()


def test_apply_write_commit_and_pack_make_a_history_git_reads(git_repo, store):
    parent = git(git_repo, "rev-parse", "HEAD").strip()
    base = store.commit_tree(parent)
    blobs = {"meta/volumes/ab/v1.json": store.add(b"blob", b'{"id": "v1"}\n'),
             "README": None}
    tree = store.apply(base, nest(blobs))
    assert tree is not None and tree != base
    commit = store.write_commit(tree, [parent], AUTHOR, "store: v1\n")
    packs = set((git_repo / ".git" / "objects" / "pack").glob("*.pack"))
    store.write_pack()
    assert len(set((git_repo / ".git" / "objects" / "pack").glob("*.pack")) - packs) == 1
    assert git(git_repo, "ls-tree", "-r", "--name-only", commit) == "meta/volumes/ab/v1.json\n"
    assert git(git_repo, "log", "-1", "--format=%an <%ae>|%s", commit) == \
        "Störe Writer <store@example.com>|store: v1\n"
    assert git_bytes(git_repo, "show", f"{commit}:meta/volumes/ab/v1.json") == b'{"id": "v1"}\n'
    git(git_repo, "update-ref", "refs/heads/main", commit)
    fsck_clean(git_repo)
    assert not [n for n in os.listdir(git_repo / ".git" / "objects" / "pack")
                if n.startswith(("tmp_", "gitpersist_"))]
    # and read back through gitdb
    assert store.lookup(store.commit_tree(commit), "meta/volumes/ab/v1.json")[0] == FILE_MODE
    assert store.lookup(store.commit_tree(commit), "README") is None
    assert store.apply(tree, nest({"meta/volumes/ab/v1.json": blobs["meta/volumes/ab/v1.json"]})
                       ) == tree       # no change: the same tree, nothing new


def test_unchanged_and_emptied_trees(store):
    assert store.apply(None, nest({"a/b": None})) is None
    blob = store.add(b"blob", b"x")
    tree = store.apply(None, nest({"a/b": blob}))
    assert store.apply(tree, nest({"a/b": None})) is None     # the empty tree
    assert store.unwritten == 3         # the blob, "a", the root
    store.discard()
    assert store.unwritten == 0


def test_reads_check_the_kind_and_missing_objects_raise(git_repo, store):
    head = git(git_repo, "rev-parse", "HEAD").strip()
    with pytest.raises(HistoryError, match="is a commit, not a tree"):
        store.read(bytes.fromhex(head), "tree")
    with pytest.raises(HistoryError, match="missing blob"):
        store.read(bytes(20), "blob")
    git(git_repo, "-c", "user.name=G", "-c", "user.email=g@x", "tag", "-a", "-m", "tagged", "v1")
    assert store.resolve("v1") == head == store.resolve("HEAD")
    with pytest.raises(HistoryError, match="not found"):
        store.resolve("nosuch")
    with pytest.raises(HistoryError, match="is a tree, not a commit"):
        store.resolve("HEAD^{tree}")


def test_the_tree_cache_is_bounded(store, git_tunables):
    git_tunables.tree_cache_size = 3
    for n in range(10):
        store.write_tree(Tree.empty().changed({f"f{n}": (FILE_MODE, bytes(20))}))
    assert store.cached_trees == 3


def test_stale_pack_temps_of_dead_processes_are_removed(git_repo, store):
    folder = git_repo / ".git" / "objects" / "pack"
    folder.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    names = [f"tmp_pack_{dead.pid}_{HOST}_abcd", f"gitpersist_idx_{dead.pid}_{HOST}_ab",
             f"tmp_idx_{os.getpid()}_{HOST}_abcd", f"gitpersist_pack_{os.getpid()}_{HOST}_ab",
             "tmp_other_1_2"]
    for name in names:
        (folder / name).write_bytes(b"")
    keeps = {"pack-1.keep": f"gitpersist {dead.pid} {HOST}\n",     # a dead writer's
             "pack-2.keep": f"gitpersist {os.getpid()} {HOST}\n",  # a live one's
             "pack-3.keep": "kept by the ops team\n"}              # the user's
    for name, text in keeps.items():
        (folder / name).write_text(text)
    store.remove_stale_temps()
    assert sorted(n for n in os.listdir(folder) if n.startswith(("tmp", "gitpersist"))) == \
        sorted(names[2:])
    assert sorted(n for n in os.listdir(folder) if n.endswith(".keep")) == \
        ["pack-2.keep", "pack-3.keep"]


def test_a_pack_is_kept_from_git_repack_until_released(git_repo, store):
    """The window where a new pack is unreachable: a keep file, so ``git
    repack -a -d`` leaves it (without, it deleted it: issue 14)."""
    parent = git(git_repo, "rev-parse", "HEAD").strip()
    tree = store.apply(store.commit_tree(parent),
                       nest({"v1.json": store.add(b"blob", b"{}\n")}))
    commit = store.write_commit(tree, [parent], AUTHOR, "v1\n")
    store.write_pack()
    [keep] = store.kept
    assert open(keep).read() == f"gitpersist {os.getpid()} {HOST}\n"
    git(git_repo, "repack", "-a", "-d", "-q")
    git(git_repo, "prune", "--expire=now")
    assert git(git_repo, "cat-file", "-t", commit) == "commit\n"
    git(git_repo, "update-ref", "refs/heads/main", commit)
    store.release()
    assert store.kept == [] and not os.path.exists(keep)
    git(git_repo, "gc", "--prune=now", "-q")
    fsck_clean(git_repo)
