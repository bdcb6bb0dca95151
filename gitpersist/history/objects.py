"""Git objects: ids, trees, reading, and writing one pack per commit.

Guarantees:

* **Cost independent of the store's size.**  A commit is built from the
  changed paths alone: the blob, the trees on its path (root -> [folders
  down to the store] -> type -> shard; the 256 shards keep each tree at
  about N/256 entries) and the commit object go into one small pack.  No
  index is read, no git process is started.  Parsed trees are cached by
  id, with their entries serialised in git's order, so changing one entry
  is a bisect and a join.
* **Durable before referenced.**  A pack and its index are written to temp
  files (fsynced), renamed into place (the ``.pack`` before the ``.idx``:
  git finds packs by their index), and their folder fsynced; only then may
  a ref point at what they hold (`refs`).  Temp files of a dead writer are
  removed at open (`remove_stale_temps`).  With ``fsync=False`` this holds
  for process crashes, not for power loss.
* **Safe beside git's housekeeping** (``git repack -a -d``, ``git gc
  --prune=now``, ``git prune --expire=now``, ``gc --aggressive``; tests:
  ``tests/test_git_beside.py``).  Git keeps only reachable objects safe
  from a concurrent repack or prune, and a new pack is unreachable until
  the ref moves.  That window is covered by a ``.keep`` file, made before
  the pack's index appears and removed once the ref moved (`release`):
  ``repack -a -d`` and ``gc`` never delete a kept pack, and a repack that
  listed the packs before the index appeared does not know the pack at
  all.  The temp files are named ``gitpersist_*``, not git's ``tmp_*``,
  which ``git prune`` sweeps (at ``--expire=now``, under a writer's feet:
  its rename then failed, and a write that happened was reported failed).
  A keep file of a dead writer goes at open with its temps.

Costs that decided the design (2 cores, ext4, git 2.39, a shared and busy
machine):

* GitPython's ``repo.index.add`` + ``index.commit`` re-reads the index
  (36 ms at 1k records, 256 ms at 10k); ``repo.odb.store`` runs one ``git
  hash-object`` per object (2.6 ms each).
* Loose objects cost a file creation each (0.16-0.2 ms on this file system)
  and, with fsync, a file and a folder fsync each: 5.5 ms for a commit's 5
  objects, against 1.5 ms for one pack and its index.
* GitPython's tree helpers (``tree_to_stream``, ``tree_entries_from_data``)
  validate every entry name: 6.4 ms for a 400-entry shard tree (100k
  records), more than the whole commit.
* gitdb's ``PackEntity.write_pack`` takes 0.57 ms for a commit's five small
  objects, `packfile.build` 0.09 ms.
* The keep file of a pack (made, written, removed; not fsynced): 23 us a
  commit, under 1% of a sync commit without fsync (2.7 ms).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import secrets
from collections import OrderedDict
from typing import Protocol

import git
import gitdb.exc  # type: ignore[import-untyped]

from .. import files, packfile
from ..errors import HistoryError
from .repo import Author, signature

TREE_MODE, FILE_MODE = 0o40000, 0o100644
NULL_ID = "0" * 40              # "no object", in refs, reflogs and index lines
HEX_ID = re.compile(rb"[0-9a-f]{40}")
Entry = tuple[int, bytes]       # (mode, binary object id)
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_COMMIT_TREES_KEPT = 64
_BUFFER_LIMIT = 20_000          # unwritten objects that make a pack at once (a big batch)
_TEMP_PREFIX = "gitpersist_"    # pack temp files: gitpersist_{pack,idx}_<pid>_<host>_<random>
_KEEP_MARK = "gitpersist "      # a keep file of ours holds "gitpersist <pid> <host>"


def object_id(kind: bytes, data: bytes) -> bytes:
    """The binary id git gives an object of `kind` (b"blob"...) holding `data`."""
    return hashlib.sha1(b"%s %d\0%s" % (kind, len(data), data)).digest()


def _keep_owner(path: str) -> tuple[str, str] | None:
    """(pid, host) named by a keep file of ours, None for anyone else's."""
    try:
        with open(path, "rb") as file:
            words = file.read(200).decode("ascii", "replace").split()
    except OSError:
        return None
    if len(words) != 3 or words[0] != _KEEP_MARK.strip():
        return None
    return words[1], words[2]


def sort_key(name: bytes, mode: int) -> bytes:
    """git's order of tree entries: a folder sorts as its name plus "/"."""
    return name + b"/" if mode == TREE_MODE else name


class Tree:
    """A parsed git tree, kept with its serialised entries in git's order
    so that changing a few names costs a few list operations and one join.
    Immutable: `changed` makes a new one.

    Written by hand: GitPython's tree_to_stream and tree_entries_from_data
    validate every name on each call, 6.4 ms for a 400-entry shard tree
    (100k records), far more than the whole commit."""

    __slots__ = ("entries", "keys", "chunks")

    def __init__(self, entries: dict[str, Entry], keys: list[bytes],
                 chunks: list[bytes]) -> None:
        self.entries = entries      # name -> (mode, id)
        self.keys = keys            # git's sort keys: the name, plus "/" for a folder
        self.chunks = chunks        # serialised entries, same order as keys

    @classmethod
    def empty(cls) -> Tree:
        return cls({}, [], [])

    @classmethod
    def parse(cls, data: bytes) -> Tree:
        entries, keys, chunks = {}, [], []
        pos, end = 0, len(data)
        while pos < end:
            space = data.index(b" ", pos)
            nul = data.index(b"\0", space)
            stop = nul + 21
            mode, name = int(data[pos:space], 8), data[space + 1:nul]
            entries[name.decode("utf-8", "surrogateescape")] = (mode, data[nul + 1:stop])
            keys.append(sort_key(name, mode))
            chunks.append(data[pos:stop])
            pos = stop
        return cls(entries, keys, chunks)

    def changed(self, updates: dict[str, Entry | None]) -> Tree:
        """A new tree with `updates` (name -> entry, None = removed) applied."""
        entries, keys, chunks = dict(self.entries), list(self.keys), list(self.chunks)
        for name, new in updates.items():
            old = entries.get(name)
            if old == new:
                continue
            raw = name.encode("utf-8", "surrogateescape")
            if old is not None:
                at = bisect.bisect_left(keys, sort_key(raw, old[0]))
                del keys[at], chunks[at], entries[name]
            if new is not None:
                key = sort_key(raw, new[0])
                at = bisect.bisect_left(keys, key)
                keys.insert(at, key)
                chunks.insert(at, b"%o %s\0%s" % (new[0], raw, new[1]))
                entries[name] = new
        return Tree(entries, keys, chunks)

    def data(self) -> bytes:
        return b"".join(self.chunks)


def nest(blobs: dict[str, bytes | None]) -> dict[str, object]:
    """{"a/b/c": x} -> {"a": {"b": {"c": x}}}"""
    tree: dict[str, object] = {}
    for path, blob in blobs.items():
        *folders, name = path.split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})  # type: ignore[assignment]
        node[name] = blob
    return tree


def commit_data(tree: bytes, parents: list[str], author: Author, message: str,
                when: int | None = None) -> bytes:
    """A commit object's content, as ``git commit-tree`` writes it (author
    and committer `author`, now, in the local time zone)."""
    who = signature(author, when)
    head = "".join([f"tree {tree.hex()}\n", *(f"parent {p}\n" for p in parents),
                    f"author {who}\n", f"committer {who}\n\n"])
    return head.encode("utf-8") + message.encode("utf-8")


class ObjectTunables(Protocol):
    """What an `ObjectStore` reads, live, of its owner (a History)."""
    fsync: bool
    tree_cache_size: int


class ObjectStore:
    """The objects of the repository `repo` (its ``objects`` folder is
    `objects_dir`): reads go through gitdb (GitPython's odb), writes are
    buffered and made one pack by `write_pack`.  Owns the parsed-tree cache
    (up to `tree_cache_size` trees, least recently used first out) and the
    commit -> tree cache (the 64 latest).

    Lock rules: not thread-safe, like GitPython's repo it reads through:
    every call is made under the owner's lock (History's ``_git_lock``).
    `write_pack` needs no store lock: a pack nothing points to yet is
    invisible to readers, and its keep file (until `release`) keeps git's
    repack and gc from deleting it."""

    def __init__(self, repo: git.Repo, objects_dir: str, tunables: ObjectTunables) -> None:
        self.repo = repo
        self.objects_dir = objects_dir
        self.tunables = tunables
        self._trees: OrderedDict[bytes, Tree] = OrderedDict()
        self._commit_trees: OrderedDict[str, bytes] = OrderedDict()
        self._unwritten: dict[bytes, tuple[bytes, bytes]] = {}     # id -> (kind, data)
        self._kept: list[str] = []      # keep files of packs written, not yet referenced

    @property
    def cached_trees(self) -> int:
        """How many parsed trees the cache holds."""
        return len(self._trees)

    @property
    def unwritten(self) -> int:
        """How many objects wait for `write_pack`."""
        return len(self._unwritten)

    # -- reading ------------------------------------------------------------

    def read(self, binsha: bytes, kind: str) -> bytes:
        """The content of object `binsha`, which must be a `kind`."""
        try:
            stream = self.repo.odb.stream(binsha)
            data: bytes = stream.read()
        except (gitdb.exc.BadObject, ValueError) as exc:
            raise HistoryError(f"{self.repo.git_dir}: missing {kind} {binsha.hex()} "
                               f"({exc})") from None
        if stream.type != kind.encode():
            raise HistoryError(f"{self.repo.git_dir}: {binsha.hex()} is a "
                               f"{stream.type.decode()}, not a {kind}")
        return data

    def tree(self, binsha: bytes) -> Tree:
        """The parsed tree `binsha` (cached)."""
        tree = self._trees.get(binsha)
        if tree is not None:
            self._trees.move_to_end(binsha)
            return tree
        tree = Tree.parse(self.read(binsha, "tree"))
        self._cache_tree(binsha, tree)
        return tree

    def commit_tree(self, commit: str) -> bytes:
        """The tree id of commit `commit` (hex)."""
        tree = self._commit_trees.get(commit)
        if tree is None:
            data = self.read(bytes.fromhex(commit), "commit")
            if not data.startswith(b"tree ") or not HEX_ID.fullmatch(data[5:45]):
                raise HistoryError(f"{self.repo.git_dir}: commit {commit} has no tree line")
            tree = bytes.fromhex(data[5:45].decode())
            self.remember_commit(commit, tree)
        return tree

    def remember_commit(self, commit: str, tree: bytes) -> None:
        """Remember a commit's tree; the 64 most recent are kept (every
        commit adds one: unbounded, it grew for the life of the process)."""
        self._commit_trees[commit] = tree
        while len(self._commit_trees) > _COMMIT_TREES_KEPT:
            self._commit_trees.popitem(last=False)

    def lookup(self, tree: bytes | None, path: str) -> Entry | None:
        """The (mode, id) at `path` below `tree`, or None."""
        entry = None if tree is None else (TREE_MODE, tree)
        for name in path.split("/"):
            if entry is None or entry[0] != TREE_MODE:
                return None
            entry = self.tree(entry[1]).entries.get(name)
        return entry

    def resolve(self, rev: str) -> str:
        """The commit id named by `rev` (an id, a branch, HEAD~2, a tag...)."""
        try:
            obj = self.repo.rev_parse(rev)
            while obj.type == "tag":
                obj = obj.object
        except (git.BadName, gitdb.exc.BadObject, ValueError, IndexError, TypeError):
            raise HistoryError(f"revision {rev!r} not found in {self.repo.git_dir}") from None
        if obj.type != "commit":
            raise HistoryError(f"revision {rev!r} is a {obj.type}, not a commit")
        return str(obj.hexsha)

    # -- writing ------------------------------------------------------------

    def add(self, kind: bytes, data: bytes) -> bytes:
        """Add an object to the pack `write_pack` writes next; return its
        binary id."""
        binsha = object_id(kind, data)
        self._unwritten.setdefault(binsha, (kind, data))
        if len(self._unwritten) >= _BUFFER_LIMIT:      # bounds the memory of a big batch
            self.write_pack()
        return binsha

    def write_tree(self, tree: Tree) -> bytes:
        binsha = self.add(b"tree", tree.data())
        self._cache_tree(binsha, tree)
        return binsha

    def apply(self, tree: bytes | None, changes: dict[str, object]) -> bytes | None:
        """The id of `tree` with `changes` applied (a nested dict of name ->
        blob id, None, or a sub-dict, as `nest` makes); None for an empty
        tree.  New trees are added to the pack."""
        base = self.tree(tree) if tree is not None else Tree.empty()
        updates: dict[str, Entry | None] = {}
        for name, change in changes.items():
            if isinstance(change, dict):
                old = base.entries.get(name)
                sub = self.apply(old[1] if old and old[0] == TREE_MODE else None, change)
                updates[name] = None if sub is None else (TREE_MODE, sub)
            else:
                updates[name] = None if change is None else (FILE_MODE, change)  # type: ignore[assignment]
        if all(base.entries.get(name) == entry for name, entry in updates.items()):
            return tree
        new = base.changed(updates)
        return self.write_tree(new) if new.entries else None

    def write_commit(self, tree: bytes, parents: list[str], author: Author,
                     message: str) -> str:
        """Add a commit of `tree` to the pack; return its id (hex)."""
        return self.add(b"commit", commit_data(tree, parents, author, message)).hex()

    def discard(self) -> None:
        """Forget the objects added and not written (a failed or empty
        commit), and `release` the packs written."""
        self._unwritten.clear()
        self.release()

    @property
    def kept(self) -> list[str]:
        """The keep files of the packs written since the last `release`."""
        return list(self._kept)

    def release(self) -> None:
        """Remove the keep files of the packs written so far: once the ref
        points at what they hold (or the commit was given up, leaving them
        to git's gc).  Not fsynced: one that a crash brings back is removed
        at the next open (`remove_stale_temps`)."""
        kept, self._kept = self._kept, []
        for path in kept:
            files.unlink_quietly(path)

    def write_pack(self) -> None:
        """Write the objects added so far as one pack and its index.

        One pack per commit rather than loose objects: 2 files instead of
        ~5, so with fsync 2 file and 1 folder fsyncs instead of ~5 + 5
        (measured: 1.5 ms against 5.5 ms a commit).  `packfile.build` makes
        the pack and the index; they are put in place like git does: temp
        files, fsynced, the .pack renamed before the .idx (git finds packs
        by their index), then the folder fsynced.  The small packs are
        rolled up in the background (``git repack --geometric``)."""
        objects, self._unwritten = self._unwritten, {}
        if not objects:
            return
        fsync = self.tunables.fsync
        # zlib level 1: faster than git's default (6) for packs, a little
        # bigger; records are small and compress well either way.
        pack_sha, pack_data, index_data = packfile.build(objects, compression=1)
        folder = os.path.join(self.objects_dir, "pack")
        os.makedirs(folder, exist_ok=True)
        name = os.path.join(folder, f"pack-{pack_sha.hex()}")
        self._keep(name + ".keep")
        temps = []
        try:
            for data, kind in ((pack_data, "pack"), (index_data, "idx")):
                # not git's tmp_ prefix: git prune removes those (see the module doc)
                temp = os.path.join(folder, f"{_TEMP_PREFIX}{kind}_{os.getpid()}_{files.HOST}_"
                                            f"{secrets.token_hex(4)}")
                fd = os.open(temp, _CREATE, 0o444)
                temps.append(temp)
                try:
                    files.write_all(fd, data)
                    if fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(temps[0], name + ".pack")
            os.replace(temps[1], name + ".idx")
        except BaseException:
            for temp in temps:
                files.unlink_quietly(temp)
            raise
        if fsync:
            files.fsync_dir(folder)

    def _keep(self, path: str) -> None:
        """Make the keep file `path` (naming this process, so that a dead
        writer's is known), before its pack's index appears."""
        if path in self._kept:
            return
        try:
            fd = os.open(path, _CREATE, 0o444)
        except FileExistsError:     # another writer's pack of the same objects:
            return                  # theirs to release, and then reachable
        self._kept.append(path)
        try:
            files.write_all(fd, f"{_KEEP_MARK}{os.getpid()} {files.HOST}\n".encode())
        finally:
            os.close(fd)

    def remove_stale_temps(self) -> None:
        """Pack temp files and keep files of our processes that died while
        writing them (a keep file of anyone else, the user's, stays)."""
        folder = os.path.join(self.objects_dir, "pack")
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(folder, name)
            parts = name.split("_")
            if len(parts) in (4, 5) and parts[0] in ("tmp", "gitpersist") \
                    and parts[1] in ("pack", "idx") \
                    and files.is_stale(parts[2], parts[3] if len(parts) == 5 else "", path):
                files.unlink_quietly(path)
            elif name.startswith("pack-") and name.endswith(".keep"):
                owner = _keep_owner(path)
                if owner is not None and files.is_stale(*owner, path):
                    files.unlink_quietly(path)

    def clear(self) -> None:
        """Drop the caches (at close)."""
        self._trees.clear()
        self._commit_trees.clear()
        self._unwritten.clear()

    def _cache_tree(self, binsha: bytes, tree: Tree) -> None:
        self._trees[binsha] = tree
        self._trees.move_to_end(binsha)
        while len(self._trees) > self.tunables.tree_cache_size:
            self._trees.popitem(last=False)
