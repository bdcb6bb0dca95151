"""Small helpers shared by the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `condition` until it holds; False if it never did within `timeout`.
    (A correctness check with a generous bound, not a speed measurement.)"""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def run_python(code: str, *args: str, check: bool = True, env: dict | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `code` in a new interpreter (this venv), return the finished process."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, check=check, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start_python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Tests of git behaviour run with no global or system git configuration
# (hence no identity), as on a fresh CI machine.
GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(root, *args: str, check: bool = True, binary: bool = False,
        input: bytes | None = None):
    """Run git in `root`; its stdout (text, or bytes with `binary`).
    GIT_OPTIONAL_LOCKS=0: `git status` must not try to rewrite the index (it
    cannot on a full disk)."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=not binary,
                          input=input, check=check,
                          env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout


def git_bytes(root, *args: str, input: bytes | None = None) -> bytes:
    """`git`, stdout as bytes."""
    return git(root, *args, binary=True, input=input)


def fsck_clean(cwd) -> None:
    """``git fsck --strict`` finds nothing wrong in the repository at `cwd`."""
    run = subprocess.run(["git", "fsck", "--strict", "--no-progress"], cwd=cwd,
                         capture_output=True, text=True)
    assert run.returncode == 0 and "error" not in run.stderr, run.stderr


def child_pids() -> set[int]:
    """The pids of this process's children, grandchildren included."""
    try:
        import psutil
    except ImportError:
        pids = set()
        for task in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{task}/children") as file:
                pids.update(int(pid) for pid in file.read().split())
        return pids
    return {child.pid for child in psutil.Process().children(recursive=True)}


# Why a test marked ``cinderlib`` skips (conftest), in one place.
CINDERLIB_MISSING = ("needs the cinderlib stack: pip install 'gitpersist[cinderlib]' "
                     "on Python 3.11")


def edit_in_place(path, old: bytes, new: bytes) -> os.stat_result:
    """Replace `old` by `new` (the same length) in the file at `path`,
    writing into the file itself (same inode), and set its mtime back: the
    change only its ctime shows.  Returns its stat before."""
    assert len(old) == len(new)
    before = os.stat(path)
    with open(path, "r+b") as file:
        data = file.read()
        file.seek(0)
        file.write(data.replace(old, new))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return before
