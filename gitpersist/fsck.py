"""Checking a store, and repairing what is safe to repair.

`check(root)` reads the whole store folder and returns one `Problem` per
thing wrong, each naming its file (relative to the store root).  It checks:

* the format file (present, parses, a format this version understands);
* every record file: it parses as a JSON object with a string ``"id"``, and
  that id belongs at the file's path (`paths.record_path`);
* references between records, by the `ReferenceRules` an application
  passes in (none by default; the CLI passes cinderlib's): a live record's
  reference fields name a live record of their type;
* folders and files that cannot be read (``unreadable``, one problem
  each: the rest is checked);
* files and folders the store cannot account for (anything that is not a
  type folder, shard folder, record file or the store's own metadata),
  symlinks (never followed), temp files left by crashed writers, write
  permissions looser than the store's modes (0600 files, 0700 folders:
  `_Modes`); in a store with git, git's checkout modes (0644 files, 0755 folders: a
  clone) are one problem ("checked out by git with mode 0644"), not one
  per file;
* with git: record files that differ from the last commit (compared with
  HEAD itself, not with the index, which follows a commit half a second
  later), a leftover ``index.lock``, and whatever ``git fsck`` reports.
  (Tests: ``tests/test_fsck.py``, the last section.)
* what would let a secret into git (`_SecretCheck`): a meta ``.gitignore``
  other than the store's (missing, or ignoring less), declared secret
  fields inline in a record file, and with git files tracked under
  ``.gitpersist/secrets`` (in the index or HEAD) and declared secret fields
  inline in HEAD's records (``tests/test_fsck_secrets.py``).

Notes (``Problem.note``) tell what is worth knowing but harmless: empty
folders left after deletions, a write in progress, a write lock held (by
whom, where it can be known: `locking.holder_of`).  They do not make a
store unclean.

With ``repair=True`` it fixes what is safe, holding the store's write lock
(`_RepairLock`): removes temp files of writers that are gone and empty
shard folders, tightens permissions, writes the store's ``.gitignore``
back, and commits uncommitted record changes through the history's
recovery (what a store opened with ``git=True`` does).  Each fixed
problem comes back with ``repaired=True``; everything else is left as found.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import subprocess
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import filelock
import orjson

from . import encoding, files, formatfile, paths, secret
from .errors import CorruptRecord, FormatError, LockTimeout, StoreError
from .locate import find_repo, uses_git
from .layout import (FORMAT_FILE, FORMAT_VERSION, GITIGNORE_FILE, LOCK_FILE, META_DIR,
                     META_GITIGNORE, META_NAMES, SECRETS_DIR, SNAPSHOT_DIR)
from .locking import held_by, holder_of, record_holder

if TYPE_CHECKING:
    import git

_SHARD_RE = re.compile(r"[0-9a-f]{2}")
_STATUS_WORDS = {"M": "modified", "A": "added", "D": "deleted", "R": "renamed",
                 "C": "copied", "U": "unmerged", "T": "type changed", "?": "new",
                 "!": "new (ignored by git)"}

Progress = Callable[[int, int], None]
# What `--repair` commits, and what it never does (a sync would carry it).
REPAIR_TITLE = "fsck --repair: commit the store files that differed from HEAD"
_NEVER_COMMITTED = frozenset({"corrupt", "id-mismatch", "format", "unreadable"})


class ReferenceRules(Protocol):
    """What `check` checks between records: an application's schema."""

    @property
    def references(self) -> Mapping[tuple[str, str], str]:
        """(type, field) -> the type whose record the field's value names."""
        ...

    def live(self, document: Mapping[str, Any]) -> bool:
        """Whether a record takes part: only a live record's references are
        checked, and only a live record satisfies one."""
        ...


class _NoReferences:
    references: Mapping[tuple[str, str], str] = MappingProxyType({})

    @staticmethod
    def live(document: Mapping[str, Any]) -> bool:
        return True


NO_REFERENCES: ReferenceRules = _NoReferences()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a store.

    `kind` is a stable short code (``corrupt``, ``id-mismatch``,
    ``dangling-reference``, ``unreadable``, ``unknown-file``, ``symlink``, ``stale-temp``,
    ``permissions``, ``format``, ``orphan-secret``, ``gitignore``,
    ``inline-secret``, ``tracked-secret``, ``uncommitted``, ``git-lock``,
    ``git-fsck``, and for notes ``empty-folder``, ``write-in-progress``,
    ``locked``); `path` is relative to the store root (``.`` for the root).
    """
    kind: str
    path: str
    message: str
    repairable: bool = False
    repaired: bool = False
    note: bool = False

    def __str__(self) -> str:
        state = " (repaired)" if self.repaired else ""
        return f"{self.path}: {self.message}{state}"


def check(root: str | os.PathLike[str], *, repair: bool = False,
          git: bool | None = None, file_mode: int = 0o600, dir_mode: int = 0o700,
          lock_timeout: float = 30.0, progress: Progress | None = None,
          rules: ReferenceRules = NO_REFERENCES) -> list[Problem]:
    """Check the store at `root`; with `repair`, fix what is safe.

    `git=None` decides by `locate.uses_git`.  `rules` are the references
    between records to check (default: none).  `progress(done, total)` is
    called as shard folders are checked.  Raises `StoreError` if `root` is
    not a folder, and `LockTimeout` if `repair` cannot take the write lock.
    """
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise StoreError(f"store path {root} is not a folder")
    use_git = git if git is not None else uses_git(root)
    checker = _Checker(root, repair, file_mode, dir_mode, progress, rules,
                       checked_out=use_git)
    secrets = _SecretCheck(checker)
    with checker.lock.held(lock_timeout):
        checker.check_meta()
        secrets.check_gitignore()
        checker.check_tree()
        checker.check_references()
        checker.modes.report_checkout()
    if use_git:
        _GitCheck(checker).check()
        secrets.check_git()
    return checker.problems


def commit_changed(root: str, reason: str, *, skip: Collection[str] = (),
                   file_mode: int = 0o600, dir_mode: int = 0o700) -> list[str]:
    """Commit the store files at `root` that differ from HEAD (but those
    in `skip`) under the title `reason`, holding the write lock: the
    history's recovery, without opening a store with git (whose recovery
    would commit everything, as a crash).  Their relpaths."""
    from .history import History
    from .store import Store
    with Store(root, watch="off", file_mode=file_mode, dir_mode=dir_mode) as store, \
            store.exclusive():
        history = History(root, lock=store.exclusive, author=None, commit_mode="sync",
                          commit_delay=0.0, fsync=True)
        try:
            return history.recover(skip=skip, reason=reason)
        finally:
            history.close()


def clean(problems: list[Problem]) -> bool:
    """True if none of `problems` is left to fix (notes and repairs aside)."""
    return all(problem.note or problem.repaired for problem in problems)


class _Report(Protocol):
    """`_Checker.report`, as the parts it owns see it."""

    def __call__(self, kind: str, relpath: str, message: str, *,
                 fix: Callable[[], None] | None = None, note: bool = False) -> None: ...


class _Modes:
    """The store's modes: a file looser than `file_mode` or a folder looser
    than `dir_mode` is one ``permissions`` problem, which a repair tightens
    to ``mode & allowed`` (never looser than it was).  In a store git checked
    out (`checked_out`: a clone), git's modes (0644 files and 0755 folders
    under umask 022, 0664/0775 under 002) are gathered instead, and
    `report_checkout` makes them one problem ("checked out by git with mode
    0644"; a fresh clone made thousands, one per file), a single one as
    itself.  (Tests: ``tests/test_fsck.py::test_loose_permissions_are_tightened``,
    ``::test_modes_are_the_stores_modes``,
    ``::test_a_git_clone_is_reported_once_and_repair_tightens_it``.)

    Locking: none of its own; it lives in one check, on one thread, and its
    repairs run under the write lock the check holds (`_RepairLock`).
    """

    def __init__(self, file_mode: int, dir_mode: int, checked_out: bool, report: _Report,
                 path: Callable[[str], str]) -> None:
        self.file_mode, self.dir_mode = file_mode, dir_mode
        self.checked_out = checked_out
        self.report = report
        self.path = path        # relpath -> absolute path
        self.checkout: list[tuple[str, int, int]] = []      # (relpath, mode, allowed)

    def check(self, relpath: str, st: os.stat_result) -> None:
        """Check the mode of `relpath`, whose `lstat` is `st`."""
        folder = stat.S_ISDIR(st.st_mode)
        allowed = self.dir_mode if folder else self.file_mode
        mode = stat.S_IMODE(st.st_mode)
        if mode & ~allowed & 0o777:
            if self.checked_out and mode in ((0o755, 0o775) if folder else (0o644, 0o664)):
                self.checkout.append((relpath, mode, allowed))
            else:
                self.report_loose(relpath, mode, allowed)

    def report_loose(self, relpath: str, mode: int, allowed: int) -> None:
        self.report("permissions", relpath, f"mode {mode:04o} is looser than {allowed:04o}",
                    fix=lambda: os.chmod(self.path(relpath), mode & allowed))

    def report_checkout(self) -> None:
        """Report what `check` gathered with git's checkout modes: one
        problem for all of them, a single one as itself."""
        found, self.checkout = self.checkout, []
        if len(found) == 1:
            self.report_loose(*found[0])
            return
        if not found:
            return

        def tighten() -> None:
            for relpath, mode, allowed in found:
                os.chmod(self.path(relpath), mode & allowed)
        self.report("permissions", ".", f"checked out by git with mode 0644: {len(found)} "
                    f"files and folders are looser than {self.file_mode:04o} (folders "
                    f"{self.dir_mode:04o}); `fsck --repair` tightens", fix=tighten)


class _RepairLock:
    """The store's write lock, as a check stands toward it.

    A repair holds it (the ``write.lock`` every writer takes, its holder
    recorded for `locking.holder_of`) from before its first fix to after its
    last, so no put or delete interleaves with one; a lock not obtained
    within the timeout raises `LockTimeout` naming its holder before anything
    is touched.  A check without repair takes no lock (it works on a
    read-only mount and beside a stopped writer): it only probes, and a held
    lock is one ``locked`` note naming the holder where it can be known.
    (Tests: ``tests/test_fsck.py::test_a_held_write_lock_is_a_note_and_repair_waits_for_it``,
    ``tests/test_lock_holder.py``.)

    Locking rule: taken once, outermost, around the checks of the store
    folder; the git checks run after its release, because a repair's commit
    (`commit_changed`) takes the same lock through a `Store`.
    """

    def __init__(self, path: str, file_mode: int, repair: bool, report: _Report) -> None:
        self.path = path        # the absolute path of LOCK_FILE
        self.file_mode = file_mode
        self.repair = repair
        self.report = report

    @contextmanager
    def held(self, timeout: float) -> Iterator[None]:
        """Hold the write lock while repairing; otherwise only say if it is held."""
        if self.repair:
            lock = filelock.FileLock(self.path, timeout=timeout, mode=self.file_mode,
                                     thread_local=False)
            try:
                lock.acquire()
            except filelock.Timeout:
                raise LockTimeout(f"could not lock {self.path} within {timeout} s "
                                  f"to repair the store{held_by(self.path)}") from None
            record_holder(self.path, self.file_mode)
            try:
                yield
            finally:
                lock.release()
            return
        if os.path.isfile(self.path) and not os.path.islink(self.path):
            probe = filelock.FileLock(self.path, timeout=0, thread_local=False)
            try:
                with probe:
                    pass
            except filelock.Timeout:
                holder = holder_of(self.path)
                self.report("locked", LOCK_FILE, f"held by a running writer"
                            f"{f' ({holder})' if holder else ''}: what "
                            "follows may change while it is checked", note=True)
        yield


class _Checker:
    def __init__(self, root: str, repair: bool, file_mode: int, dir_mode: int,
                 progress: Progress | None, rules: ReferenceRules, *,
                 checked_out: bool) -> None:
        self.root = root
        self.repair = repair
        self.file_mode, self.dir_mode = file_mode, dir_mode
        self.progress = progress
        self.problems: list[Problem] = []
        self.ids: dict[str, set[str]] = {}           # type -> ids found
        self.references: list[tuple[str, str, str, str]] = []   # relpath, field, type, id
        self.live = rules.live
        self.fields: dict[str, list[tuple[str, str]]] = {}      # type -> [(field, target)]
        # called with each record that parses: (type, relpath, document)
        self.record_checks: list[Callable[[str, str, dict[str, Any]], None]] = []
        self.modes = _Modes(file_mode, dir_mode, checked_out, self.report, self.path)
        self.lock = _RepairLock(self.path(LOCK_FILE), file_mode, repair, self.report)
        for (source, field), target in rules.references.items():
            self.fields.setdefault(source, []).append((field, target))

    # -- reporting -----------------------------------------------------------

    def report(self, kind: str, relpath: str, message: str, *,
               fix: Callable[[], None] | None = None, note: bool = False) -> None:
        """Add a problem; with `repair`, run `fix` first (an OSError is reported)."""
        repaired = False
        if fix is not None and self.repair:
            try:
                fix()
                repaired = True
            except OSError as exc:
                message += f" (could not repair: {exc.strerror or exc})"
        self.problems.append(Problem(kind, relpath, message, repairable=fix is not None,
                                     repaired=repaired, note=note))

    def path(self, relpath: str) -> str:
        return self.root if relpath == "." else os.path.join(self.root, *relpath.split("/"))

    # -- the metadata folder -------------------------------------------------

    def check_meta(self) -> None:
        # The root's own mode is the user's business (it may be a folder of
        # a shared repository); what the store creates below it is checked.
        meta = self.path(META_DIR)
        if os.path.islink(meta) or not os.path.isdir(meta):
            self.report("format", META_DIR, "missing: not a gitpersist store "
                        "(or its metadata folder was removed)")
            return
        self.modes.check(META_DIR, os.lstat(meta))
        for entry in sorted(os.scandir(meta), key=lambda e: e.name):
            relpath = f"{META_DIR}/{entry.name}"
            if entry.is_symlink():
                self.report("symlink", relpath, "is a symlink; the store never writes one")
            elif entry.name in META_NAMES and entry.is_file():
                self.modes.check(relpath, entry.stat(follow_symlinks=False))
            elif entry.name == "secrets" and entry.is_dir():
                self.check_secrets(relpath)
            elif relpath == SNAPSHOT_DIR and entry.is_dir():     # the cache's, rebuilt at will
                for snapshot in os.scandir(entry.path):
                    self.modes.check(f"{relpath}/{snapshot.name}",
                                    snapshot.stat(follow_symlinks=False))
            elif files.is_stale_temp(entry.name, entry.path):
                self.report_stale_temp(relpath)
            else:
                self.report("unknown-file", relpath,
                            "not a file gitpersist keeps in its metadata folder")
        self.check_format()

    def check_secrets(self, relfolder: str) -> None:
        """The side files of secret fields (gitpersist.secret): modes,
        symlinks, temp files, and side files whose record is gone."""
        self.modes.check(relfolder, os.lstat(self.path(relfolder)))
        for folder, dirs, names in os.walk(self.path(relfolder)):
            for name in sorted(dirs + names):
                path = os.path.join(folder, name)
                relpath = os.path.relpath(path, self.root).replace(os.sep, "/")
                record = relpath[len(relfolder) + 1:]
                if os.path.islink(path):
                    self.report("symlink", relpath, "is a symlink; the store never writes one")
                elif files.is_stale_temp(name, path):
                    self.report_stale_temp(relpath)
                elif name in dirs or record == "key" or name.startswith("."):
                    self.modes.check(relpath, os.lstat(path))
                elif paths.split_record_path(record) is None:
                    self.report("unknown-file", relpath, "not a side file of secret fields")
                elif not os.path.lexists(self.path(record)):
                    self.report("orphan-secret", relpath, f"secret fields of {record}, which "
                                "is gone (a deletion stopped between its two files)",
                                fix=functools.partial(os.unlink, path))
                else:
                    self.modes.check(relpath, os.lstat(path))
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]

    def check_format(self) -> None:
        try:
            found = files.read(self.path(FORMAT_FILE))
        except OSError as exc:
            self.report("format", FORMAT_FILE, f"unreadable: {exc.strerror or exc}")
            return
        if found is None:
            self.report("format", FORMAT_FILE, "missing: the store's format is unknown")
            return
        try:
            version = orjson.loads(found[0])["format"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.report("format", FORMAT_FILE, "not a gitpersist format file")
            return
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self.report("format", FORMAT_FILE, f"format {version!r} is not a format version")
        elif version > FORMAT_VERSION:
            self.report("format", FORMAT_FILE, f"format {version} is newer than this "
                        f"gitpersist understands ({FORMAT_VERSION}); upgrade gitpersist")

    # -- types, shards, records ----------------------------------------------

    def check_tree(self) -> None:
        type_folders = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name == META_DIR or (entry.name == ".git" and not entry.is_symlink()):
                continue
            if entry.is_symlink():
                self.report("symlink", entry.name, "is a symlink; the store never writes one")
            elif entry.is_dir() and paths.is_type(entry.name):
                type_folders.append(entry)
            elif files.is_stale_temp(entry.name, entry.path):
                self.report_stale_temp(entry.name)
            else:
                what = "folder" if entry.is_dir() else "file"
                self.report("unknown-file", entry.name,
                            f"{what} the store cannot account for (not a type folder)")
        shards = []
        for type_entry in type_folders:
            self.ids.setdefault(type_entry.name, set())
            self.modes.check(type_entry.name, type_entry.stat(follow_symlinks=False))
            shards.extend(self.shards_of(type_entry))
        for done, (type, shard) in enumerate(shards, 1):
            self.check_shard(type, shard)
            if self.progress is not None:
                self.progress(done, len(shards))
        for type_entry in type_folders:
            self.remove_if_empty(type_entry.name)

    def listing(self, relfolder: str, folder: str) -> list[os.DirEntry[str]]:
        """The entries of `folder`, sorted by name; one that cannot be
        listed is one ``unreadable`` problem, and the check goes on."""
        try:
            with os.scandir(folder) as entries:
                return sorted(entries, key=lambda e: e.name)
        except FileNotFoundError:       # removed while we looked
            return []
        except OSError as exc:
            self.report("unreadable", relfolder, f"folder cannot be listed "
                        f"({exc.strerror or exc}): its records were not checked")
            return []

    def shards_of(self, type_entry: os.DirEntry[str]) -> list[tuple[str, os.DirEntry[str]]]:
        shards = []
        for entry in self.listing(type_entry.name, type_entry.path):
            relpath = f"{type_entry.name}/{entry.name}"
            if entry.is_symlink():
                self.report("symlink", relpath, "is a symlink; the store never writes one")
            elif entry.is_dir() and _SHARD_RE.fullmatch(entry.name):
                shards.append((type_entry.name, entry))
            elif files.is_stale_temp(entry.name, entry.path):
                self.report_stale_temp(relpath)
            else:
                what = "folder" if entry.is_dir() else "file"
                self.report("unknown-file", relpath,
                            f"{what} the store cannot account for (not a shard folder)")
        return shards

    def check_shard(self, type: str, shard: os.DirEntry[str]) -> None:
        relfolder = f"{type}/{shard.name}"
        self.modes.check(relfolder, shard.stat(follow_symlinks=False))
        for entry in self.listing(relfolder, shard.path):
            relpath = f"{relfolder}/{entry.name}"
            if entry.is_symlink():
                self.report("symlink", relpath, "is a symlink; the store never writes one")
            elif entry.name.startswith(".") and entry.name.endswith(files.TEMP_SUFFIX):
                if files.is_stale_temp(entry.name, entry.path):
                    self.report_stale_temp(relpath)
                else:
                    self.report("write-in-progress", relpath,
                                "temp file of a running writer", note=True)
            elif entry.is_file() and paths.split_record_path(relpath) is not None:
                self.modes.check(relpath, entry.stat(follow_symlinks=False))
                self.check_record(type, relpath)
            else:
                what = "folder" if entry.is_dir() else "file"
                self.report("unknown-file", relpath,
                            f"{what} the store cannot account for (not a record file)")
        self.remove_if_empty(relfolder)

    def check_record(self, type: str, relpath: str) -> None:
        try:
            found = files.read(self.path(relpath))
            if found is None:           # removed while we looked
                return
            document = encoding.loads(found[0], relpath)
        except CorruptRecord as exc:
            self.report("corrupt", relpath, exc.reason)
            return
        except OSError as exc:
            self.report("unreadable", relpath, f"file cannot be read ({exc.strerror or exc})")
            return
        id = document["id"]
        try:
            expected = paths.record_path(type, id)
        except ValueError as exc:
            self.report("corrupt", relpath, f"its id cannot be stored: {exc}")
            return
        if expected != relpath:
            self.report("id-mismatch", relpath,
                        f"holds id {id!r}, which belongs at {expected}")
            return
        for record_check in self.record_checks:
            record_check(type, relpath, document)
        if not self.live(document):     # e.g. soft-deleted: names nothing, is named by none
            return
        self.ids[type].add(id)
        for field, target in self.fields.get(type, ()):
            value = document.get(field)
            if isinstance(value, str):
                self.references.append((relpath, field, target, value))

    def check_references(self) -> None:
        for relpath, field, target, value in self.references:
            if value not in self.ids.get(target, ()):
                self.report("dangling-reference", relpath,
                            f"{field} {value!r} names no record in {target}")

    # -- leftovers -----------------------------------------------------------

    def report_stale_temp(self, relpath: str) -> None:
        self.report("stale-temp", relpath, "temp file left by a writer that is gone",
                    fix=lambda: os.unlink(self.path(relpath)))

    def remove_if_empty(self, relfolder: str) -> None:
        folder = self.path(relfolder)
        try:
            with os.scandir(folder) as entries:
                empty = next(entries, None) is None
        except OSError:     # gone, or unreadable (reported by `listing`)
            return
        if empty:
            self.report("empty-folder", relfolder, "empty folder (left after deletions)",
                        fix=lambda: os.rmdir(folder), note=True)


def differs_from_head(worktree: str, prefix: str, relpaths: list[str],
                      root: str) -> dict[str, str | None]:
    """How each store file (relpath below `root`, at `prefix` in the work
    tree) differs from HEAD: "same", "new", "deleted", "modified", or None
    where the file cannot be read (a folder or symlink in its place).  One
    ``git cat-file --batch-check`` for all of them."""
    from .history.history import read_store_file
    from .history.objects import object_id
    if not relpaths:
        return {}
    run = subprocess.run(
        ["git", "cat-file", "--batch-check=%(objectname)"], cwd=worktree,
        input="".join(f"HEAD:{prefix}{relpath}\n" for relpath in relpaths).encode(
            "utf-8", "surrogateescape"), capture_output=True, check=False)
    lines = run.stdout.decode("ascii", "replace").splitlines()
    if run.returncode != 0 or len(lines) != len(relpaths):
        return dict.fromkeys(relpaths)      # no HEAD to read: status's word
    found: dict[str, str | None] = {}
    for relpath, line in zip(relpaths, lines):
        head = line if re.fullmatch(r"[0-9a-f]{40}", line) else None
        data = read_store_file(root, relpath)
        if data is False:
            found[relpath] = None
        elif data is None:
            found[relpath] = "same" if head is None else "deleted"
        elif head is None:
            found[relpath] = "new"
        else:
            found[relpath] = "same" if object_id(b"blob", data).hex() == head else "modified"
    return found


class _GitCheck:
    """The checks of a store's git side: uncommitted store files (committed
    by a repair, as a store opened with git does), git's index lock, and
    ``git fsck`` of the repository."""

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker

    def check(self) -> None:
        repo = find_repo(self.checker.root)
        if repo is None:
            self.checker.report("git-fsck", ".", "the store should keep git history, "
                        "but no git repository holds it")
            return
        assert repo.working_tree_dir is not None        # find_repo: never bare
        try:
            here = os.path.relpath(os.path.realpath(self.checker.root),
                                   os.path.realpath(repo.working_tree_dir))
            lock = os.path.join(repo.git_dir, "index.lock")
            if os.path.exists(lock):
                self.checker.report("git-lock", os.path.relpath(lock, self.checker.root),
                            "git's index lock: a git command is running, or one "
                            "crashed (then remove the file)")
            changes = self.uncommitted(repo, here)
            left = changes
            broken = self.broken()
            if changes and self.checker.repair and not os.path.exists(lock):
                self.commit_pending(broken)
                left = self.uncommitted(repo, here)
            for relpath, what in changes.items():
                held = relpath in broken        # never carried to other hosts
                self.checker.problems.append(Problem(
                    "uncommitted", relpath, f"{what} since the last commit" + (
                        " (not committed: it is reported broken above)" if held else ""),
                    repairable=not held, repaired=relpath not in left))
            self.git_fsck(repo)
        finally:
            repo.close()

    def uncommitted(self, repo: git.Repo, here: str) -> dict[str, str]:
        """Record and format files that differ from HEAD: relpath -> what.
        ``git status`` names the candidates; each is then compared with HEAD
        itself (`differs_from_head`), not with the index, which the history
        updates half a second after a commit: read from status alone, every
        commit looked uncommitted for that long."""
        # Ignored files too: the history commits record files whatever the
        # repository's .gitignore says.
        from .history.runner import STATUS, parse_status     # GitPython: only for git
        pathspec = "." if here == "." else f":(literal){here}"
        status, out, err = repo.git.execute(
            ["git", *STATUS, "--", pathspec], with_extended_output=True,
            with_exceptions=False, strip_newline_in_stdout=False,
            env={"GIT_OPTIONAL_LOCKS": "0"})      # no index refresh: fsck only reads
        if status != 0:
            self.checker.report("git-fsck", ".", f"git status failed: {err.strip()}")
            return {}
        prefix = "" if here == "." else here.replace(os.sep, "/") + "/"
        codes = parse_status(out, prefix)
        found = {}
        for relpath, head_says in differs_from_head(os.fspath(repo.working_tree_dir or "."), prefix,
                                                    list(codes), self.checker.root).items():
            code = codes[relpath]
            word = _STATUS_WORDS.get(code[1] if code[1] != " " else code[0], "changed")
            if head_says is None or (head_says == "new" and word.startswith("new")):
                found[relpath] = word       # keeps "(ignored by git)"
            elif head_says != "same":
                found[relpath] = head_says
        return found

    def broken(self) -> set[str]:
        """The files this check found broken (corrupt, at the wrong path, an
        unreadable format file): a repair never commits them."""
        return {problem.path for problem in self.checker.problems
                if problem.kind in _NEVER_COMMITTED and not problem.repaired}

    def commit_pending(self, broken: set[str]) -> None:
        """Commit what is uncommitted but `broken`, in a commit that says it
        is this repair's."""
        commit_changed(self.checker.root, REPAIR_TITLE, skip=broken,
                       file_mode=self.checker.file_mode, dir_mode=self.checker.dir_mode)

    def git_fsck(self, repo: git.Repo) -> None:
        status, out, err = repo.git.fsck("--no-dangling", "--no-progress",
                                         with_extended_output=True, with_exceptions=False)
        lines = [line.strip() for line in f"{out}\n{err}".splitlines()]
        lines = [line for line in lines if line and not line.startswith("notice:")]
        if status != 0 and not lines:
            lines = [f"git fsck exited with status {status}"]
        for line in lines:
            self.checker.report("git-fsck", os.path.relpath(repo.git_dir, self.checker.root), line)


class _SecretCheck:
    """What would let a declared secret into git (see the module docstring).
    Nothing here quotes a value: problems name the file and the fields."""

    def __init__(self, checker: _Checker) -> None:
        self.checker = checker
        self.declared = self.declared_fields()
        checker.record_checks.append(self.check_record)

    def declared_fields(self) -> secret.Fields:
        """What the format file declares ({} if it cannot be read: the
        format check reports that)."""
        try:
            found = files.read(self.checker.path(FORMAT_FILE))
            return formatfile.declared_secrets(formatfile.parse(found[0])) if found else {}
        except (OSError, FormatError):
            return {}

    def check_gitignore(self) -> None:
        meta = self.checker.path(META_DIR)
        if os.path.islink(meta) or not os.path.lexists(self.checker.path(FORMAT_FILE)):
            return      # not a store: check_meta said so
        path = self.checker.path(GITIGNORE_FILE)
        try:
            found = files.read(path)
        except OSError as exc:
            found, why = None, f"unreadable ({exc.strerror or exc})"
        else:
            why = "missing" if found is None else "not the store's"
        if found is not None and found[0] == META_GITIGNORE:
            return
        if os.path.islink(path) or os.path.isdir(path):
            why = "a symlink or a folder"
        self.checker.report(
            "gitignore", GITIGNORE_FILE,
            f"{why}: git would see .gitpersist/secrets (the secret fields and the key), the "
            "lock file and the change log, and 'git add -A' would commit them",
            fix=None if os.path.isdir(path) and not os.path.islink(path) else functools.partial(
                self.write_gitignore, path))

    def write_gitignore(self, path: str) -> None:
        if os.path.islink(path):
            os.unlink(path)
        files.write_atomic(self.checker.root, GITIGNORE_FILE, META_GITIGNORE, fsync=True,
                           file_mode=self.checker.file_mode, dir_mode=self.checker.dir_mode)

    def check_record(self, type: str, relpath: str, document: dict[str, Any],
                     where: str = "the record file") -> None:
        inline = sorted(self.declared.get(type, frozenset()) & document.keys())
        if inline:
            self.checker.report(
                "inline-secret", relpath,
                f"{where} holds the declared secret field(s) {', '.join(inline)}, which the "
                "store keeps in .gitpersist/secrets" + (
                    " (in git: remove them from history, e.g. with git filter-repo, and "
                    "change the credentials if it was pushed)" if where != "the record file"
                    else " (a put of the record moves them)"))

    def check_git(self) -> None:
        """Files tracked under the secrets folder, and secret fields inline
        in HEAD's records."""
        repo = find_repo(self.checker.root)
        if repo is None:
            return      # _GitCheck reported it
        try:
            assert repo.working_tree_dir is not None
            here = os.path.relpath(os.path.realpath(self.checker.root),
                                   os.path.realpath(repo.working_tree_dir))
            prefix = "" if here == "." else here.replace(os.sep, "/") + "/"
            secrets_dir = f"{prefix}{SECRETS_DIR}/"
            tracked = {os.fspath(path) for path, _ in repo.index.entries
                       if os.fspath(path).startswith(secrets_dir)}
            try:
                tree = repo.head.commit.tree
            except ValueError:      # no commit yet
                tree = None
            if tree is not None:
                tracked |= {blob.path for blob in self.blobs_below(tree, secrets_dir[:-1])}
            for path in sorted(tracked):
                self.checker.report(
                    "tracked-secret", path[len(prefix):],
                    "tracked by git (the index or HEAD): a commit and a sync would push it; "
                    "'git rm --cached' it, and if it was pushed rewrite history and change "
                    "the credentials")
            for type in sorted(self.declared) if tree is not None else ():
                for blob in self.blobs_below(tree, prefix + type):
                    relpath = blob.path[len(prefix):]
                    if paths.split_record_path(relpath) is None:
                        continue
                    try:
                        document = orjson.loads(blob.data_stream.read())
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(document, dict):
                        self.check_record(type, relpath, document, where="HEAD's version")
        finally:
            repo.close()

    @staticmethod
    def blobs_below(tree: Any, path: str) -> list[Any]:
        """The blobs of `tree` below `path` (none if there is no such folder)."""
        try:
            below = tree / path
        except KeyError:
            return []
        if below.type != "tree":
            return [below]
        return [item for item in below.traverse() if item.type == "blob"]
