"""Durable, atomic record files.

Guarantees:

* `write_atomic` leaves the old or the new content at the target, never a
  torn mix: it writes a temp file in the same folder, fsyncs it, renames it
  over the target and fsyncs the folder (the fsyncs only when asked).
* Folders below the store root are opened one by one without following
  symlinks, so a symlink planted inside the store cannot redirect a write,
  nor a read by `read_below` (``tests/test_reader.py``).
* Temp files are named ``.<name>.<pid>.<host>.<random>.tmp``.  Readers
  ignore names starting with a dot; `is_stale_temp` tells when the writer
  that left one is gone, so it can be removed.  `<host>` (`HOST`) stands for
  this boot of this host and this PID namespace: whether a pid is alive is
  asked of the kernel only for temp files of our own namespace.  Any other
  (another host on a shared folder, a container, an older gitpersist) is
  stale only once `STALE_AGE` seconds old; a writer holds one for
  milliseconds.

The file functions work on ``dir_fd``s rather than paths: that is what makes
O_NOFOLLOW cover every folder on the way, and it costs the same syscalls.
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from stat import S_ISREG

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted at a record path must not hang the reader
# (it does nothing for regular files).
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
TEMP_SUFFIX = ".tmp"
STALE_AGE = 3600.0      # seconds: a temp file of another host or namespace this old is stale


def _host() -> str:
    """8 hex digits naming this boot of this host and this PID namespace."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id",):
        try:
            with open(path) as file:
                parts.append(file.read().strip())
        except OSError:
            pass
    try:
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:8]


HOST = _host()


@contextmanager
def _open_dirs(root: str, folders: list[str], *, create: bool, dir_mode: int,
               fsync: bool) -> Iterator[int]:
    """Yield an fd of root/folders..., creating missing folders if asked."""
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for name in folders:
            try:
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, dir_mode, dir_fd=fds[-1])
                except FileExistsError:
                    pass
                if fsync:
                    os.fsync(fds[-1])
                fds.append(os.open(name, _DIR_FLAGS, dir_fd=fds[-1]))
        yield fds[-1]
    finally:
        for fd in fds:
            os.close(fd)


def write_atomic(root: str, relpath: str, data: bytes, *, fsync: bool,
                 file_mode: int, dir_mode: int) -> os.stat_result:
    """Replace root/relpath with `data`; return the new file's stat."""
    *folders, name = relpath.split("/")
    with _open_dirs(root, folders, create=True, dir_mode=dir_mode, fsync=fsync) as dir_fd:
        temp = f".{name}.{os.getpid()}.{HOST}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        fd = os.open(temp, _TEMP_FLAGS, file_mode, dir_fd=dir_fd)
        try:
            try:
                write_all(fd, data)
                if fsync:
                    os.fsync(fd)
                stat = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            unlink_quietly(temp, dir_fd=dir_fd)
            raise
        if fsync:
            os.fsync(dir_fd)
        return stat


def remove(root: str, relpath: str, *, fsync: bool) -> bool:
    """Remove root/relpath; False if it was not there."""
    *folders, name = relpath.split("/")
    try:
        with _open_dirs(root, folders, create=False, dir_mode=0, fsync=False) as dir_fd:
            os.unlink(name, dir_fd=dir_fd)
            if fsync:
                os.fsync(dir_fd)
    except FileNotFoundError:
        return False
    return True


def read(path: str) -> tuple[bytes, os.stat_result] | None:
    """Content and stat of a regular file (symlinks refused), or None."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise IsADirectoryError(errno.ELOOP, "is a symlink, not a record file", path) from None
        raise
    try:
        return _read_fd(fd, path)
    finally:
        os.close(fd)


def read_below(root: str, relpath: str) -> tuple[bytes, os.stat_result] | None:
    """`read` of root/relpath, no symlink followed at any level below
    `root`: a symlinked folder on the way raises `OSError` (ELOOP) naming
    the file, as a symlinked file does.  (Each folder opened with
    O_NOFOLLOW: 3 opens and closes more than `read` for a record; an
    uncached `Store.get` measured 38 us against 23-33 us on a loaded
    2-core machine.  Listings read by `read` what they listed: their
    folders were opened without following symlinks already.)"""
    *folders, name = relpath.split("/")
    path = os.path.join(root, *folders, name)
    try:
        with _open_dirs(root, folders, create=False, dir_mode=0, fsync=False) as dir_fd:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise IsADirectoryError(errno.ELOOP, "it or a folder on its path is a symlink "
                                    "(never followed) or not a folder", path) from None
        raise
    try:
        return _read_fd(fd, path)
    finally:
        os.close(fd)


def _read_fd(fd: int, path: str) -> tuple[bytes, os.stat_result]:
    stat = os.fstat(fd)
    if not S_ISREG(stat.st_mode):
        raise OSError(errno.EINVAL, "not a regular file", path)
    chunks = []
    while chunk := os.read(fd, max(stat.st_size, 4096) + 1):
        chunks.append(chunk)
    return b"".join(chunks), stat


def signature(stat: os.stat_result) -> tuple[int, int, int]:
    """What tells two versions of a file apart without reading it."""
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def racy(signature: tuple[int, int, int], checked: int) -> bool:
    """True while a file's timestamp (`signature`'s) is not safely older
    than `checked` (ns, when it was read or written: git's "racy" rule): on
    a file system whose timestamps are coarse (whole seconds, whole
    milliseconds), another write in the same tick can leave the same
    signature (a reused inode, the same size), so only the content tells.
    Never on a fine-grained one."""
    mtime = signature[1]
    return mtime % 1_000_000 == 0 and mtime + COARSE_TICK > checked


COARSE_TICK = 2_000_000_000     # ns: FAT's 2 s, the coarsest in use


def is_stale_temp(name: str, path: str) -> bool:
    """True for a temp file (`name`, at `path`) whose writer is gone."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return False
    parts = name.rsplit(".", 4)
    pid, host = (parts[1], parts[2]) if len(parts) == 5 else ("", "")
    return is_stale(pid, host, path)


def is_stale(pid: str, host: str, path: str) -> bool:
    """Whether a temp file at `path` left by process `pid` of `host` (its
    `HOST`) is stale: that process is gone, if it is one of this host and
    namespace; else the file is older than `STALE_AGE`."""
    if host == HOST and pid.isdigit():
        return not process_alive(int(pid))
    try:
        return time.time() - os.lstat(path).st_mtime > STALE_AGE
    except FileNotFoundError:
        return False


def process_alive(pid: int) -> bool:
    """True unless process `pid` certainly no longer exists (on this host)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def fsync_dir(path: str) -> None:
    """Make a rename or creation in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: str, *, dir_fd: int | None = None) -> None:
    """Remove a file if it can be removed: for temp files and locks whose
    removal is best effort (a missing or undeletable file is no error)."""
    try:
        os.unlink(path, dir_fd=dir_fd)
    except OSError:
        pass
