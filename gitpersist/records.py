"""The store's files on disk: read, write, remove and list them, with errors
that name the file.

`RecordFiles` is `gitpersist.files` bound to one store folder and its
options (fsync, file and folder modes).  It holds no state but those
options and no lock: callers that write hold the store's write lock
(`gitpersist.locking`).

Guarantees (on top of `gitpersist.files`: atomic replace, no symlink
followed at any level below the store folder, on writes and on reads,
FIFOs refused):

* A write or removal that fails raises `StoreError` naming the file, and
  "store folder ... is missing" when the store folder itself is gone.
* A read that fails for any reason but absence raises `CorruptRecord`
  naming the file: a folder, a symlink (the file's or a folder's on its
  path: ``tests/test_reader.py``) or an unreadable file where a record
  should be is a broken record, not a missing one.
* `record_files` lists the record files of a type folder (folders and
  names `paths.split_record_path` refuses are skipped; the temp files of
  writers that are gone are removed on the way).
"""

from __future__ import annotations

import os

from . import files, paths
from .errors import CorruptRecord, StoreError, UnreadableFolder
from .layout import META_DIR


class RecordFiles:
    """The files below `root` (relpaths use ``/``)."""

    def __init__(self, root: str, *, fsync: bool, file_mode: int, dir_mode: int) -> None:
        self.root = root
        self.fsync = fsync
        self.file_mode = file_mode
        self.dir_mode = dir_mode

    def path(self, relpath: str) -> str:
        return os.path.join(self.root, *relpath.split("/"))

    def read(self, relpath: str, listed: str | None = None
             ) -> tuple[bytes, os.stat_result] | None:
        """Content and stat of the file, or None if there is none.  `listed`:
        its path as `record_files` listed it (its folders were opened
        without following a symlink, so only the file is checked again:
        this saves a full load ~1/3 of its time, measured at 5,000 records)."""
        path = listed or self.path(relpath)
        try:
            return files.read(listed) if listed else files.read_below(self.root, relpath)
        except OSError as exc:
            raise CorruptRecord(path, exc.strerror or str(exc)) from None

    def exists(self, relpath: str) -> bool:
        return os.path.lexists(self.path(relpath))

    def is_folder(self, relpath: str) -> bool:
        """A folder, reached without following a symlink at any level."""
        parts = relpath.split("/")
        return os.path.isdir(self.path(relpath)) and not any(
            os.path.islink(self.path("/".join(parts[:n]))) for n in range(1, len(parts) + 1))

    @staticmethod
    def signature(path: str) -> tuple[int, int, int]:
        """The signature (`files.signature`) of the file at `path` now."""
        return files.signature(os.lstat(path))

    def write(self, relpath: str, data: bytes) -> os.stat_result:
        """Replace the file atomically (durably with fsync); its new stat."""
        try:
            return files.write_atomic(self.root, relpath, data, fsync=self.fsync,
                                      file_mode=self.file_mode, dir_mode=self.dir_mode)
        except FileNotFoundError:
            raise StoreError(f"store folder {self.root} is missing") from None
        except OSError as exc:
            raise StoreError(f"cannot write {self.path(relpath)}: {exc.strerror}") from None

    def remove(self, relpath: str) -> bool:
        """Remove the file; False if there was none."""
        try:
            return files.remove(self.root, relpath, fsync=self.fsync)
        except OSError as exc:
            raise StoreError(f"cannot delete {self.path(relpath)}: "
                             f"{exc.strerror or exc}") from None

    def shards(self, folder: str) -> list[tuple[str, str]]:
        """(relpath, path) of each shard folder of the folder `folder`
        (a type folder, or one in the secrets folder); none if it is
        missing or a symlink (never followed).  Raises `UnreadableFolder` if
        it cannot be listed."""
        if os.path.islink(self.path(folder)):
            return []
        return [(f"{folder}/{entry.name}", entry.path)
                for entry in self._list(self.path(folder))
                if entry.is_dir(follow_symlinks=False)]

    def record_files(self, relfolder: str, folder: str | None = None) -> list[tuple[str, str]]:
        """(relpath, path) of the record files in the shard folder
        `relfolder`; stale temp files there are removed.  Raises
        `UnreadableFolder` if the folder cannot be listed."""
        found = []
        for file in self._list(folder or self.path(relfolder)):
            if files.is_stale_temp(file.name, file.path):
                files.unlink_quietly(file.path)
            elif paths.split_record_path(f"{relfolder}/{file.name}") is not None:
                found.append((f"{relfolder}/{file.name}", file.path))
        return found

    @staticmethod
    def _list(path: str) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(path) as entries:
                return list(entries)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:      # e.g. chmod 000: name it, list the rest
            raise UnreadableFolder(path, exc.strerror or str(exc)) from None


def writable(root: str) -> bool:
    """Whether this process may write in the store folder `root` and its
    meta folder (as far as they exist: a missing one is made at open)."""
    return all(os.access(path, os.W_OK) for path in (root, os.path.join(root, META_DIR))
               if os.path.isdir(path))


def check_store_folder(root: str) -> None:
    """What `open_store_folder` checks, for a store opened read-only: `root`
    and its meta folder exist (nothing is made)."""
    meta = os.path.join(root, META_DIR)
    if not os.path.isdir(root):
        raise StoreError(f"store folder {root} is missing (read_only=True opens an "
                         "existing store)")
    if os.path.islink(meta) or not os.path.isdir(meta):
        raise StoreError(f"no gitpersist store at {root}: {meta} is missing, a symlink or "
                         "not a folder (read_only=True opens an existing store)")


def open_store_folder(root: str, dir_mode: int, *, create: bool = True) -> None:
    """Make sure `root` and its meta folder exist (created `dir_mode`: a
    store folder made here is private, git's objects in it are 0444), and
    refuse a meta folder that is a symlink or not a folder.  Without
    `create` (a store opened read-only), `check_store_folder`."""
    if not create:
        check_store_folder(root)
        return
    if os.path.exists(root) and not os.path.isdir(root):
        raise StoreError(f"store path {root} exists and is not a folder")
    meta = os.path.join(root, META_DIR)
    try:
        os.makedirs(root, mode=dir_mode, exist_ok=True)
        if not os.path.lexists(meta):
            os.mkdir(meta, dir_mode)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StoreError(f"cannot create store folder {root}: {exc.strerror}") from None
    if os.path.islink(meta) or not os.path.isdir(meta):
        raise StoreError(f"{meta} is a symlink or not a folder: the store never "
                         "follows a symlink")
