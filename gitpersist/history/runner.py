"""Running git commands: one runner for the history and the sync.

`GitRunner.run` starts git in the work tree and waits for it, with
``GIT_TERMINAL_PROMPT=0`` (git never waits for a password) and, when a
timeout is given, stops a command that runs longer: SIGTERM first (git then
removes its lock files), SIGKILL 5 s later.  Nothing is left running: a
command interrupted by any exception is killed and reaped.

A command that takes git's ``index.lock`` fails at once when another git
process holds it; `run_retrying_index` tries again every 20 ms for a while
(git holds it for milliseconds).

`changed_store_files` is ``git status`` read as the store's relpaths.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence

import git

from ..errors import HistoryError
from ..layout import is_store_file

STATUS = ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--ignored=traditional",
          "--no-renames", "--ignore-submodules=all"]
INDEX_RETRY_PAUSE = 0.02        # seconds between two tries of a command needing index.lock
Run = subprocess.CompletedProcess[bytes]


class GitRunner:
    """Runs git in `worktree`; its failures raise `error` (the history's
    `HistoryError`, the sync's `SyncError`).  `timeout`: seconds a command
    may run when the call names none (None: no limit).

    Lock rules: none.  Each call is its own process and the runner keeps no
    state, so any thread may use it at any time."""

    def __init__(self, worktree: str, *, error: type[HistoryError] = HistoryError,
                 timeout: float | None = None) -> None:
        self.worktree = worktree
        self.error = error
        self.timeout = timeout

    @property
    def executable(self) -> str:
        """The git program (GitPython's choice: $GIT_PYTHON_GIT_EXECUTABLE)."""
        return git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"

    def environment(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})}

    def run(self, args: Sequence[str], *, input: bytes | None = None,
            env: Mapping[str, str] | None = None, timeout: float | None = None,
            what: str | None = None) -> Run:
        """Run ``git args`` and wait for it; its exit status is the caller's
        to judge.  Past `timeout` (else the runner's), stop it and raise,
        naming `what` (else the work tree)."""
        timeout = self.timeout if timeout is None else timeout
        proc = subprocess.Popen(
            [self.executable, *args], cwd=self.worktree,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.environment(env))
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            raise self.error(f"git {args[0]} ({what or self.worktree}) did not finish "
                             f"within {timeout:g} s; stopped it") from None
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def output(self, args: Sequence[str], *, input: bytes | None = None,
               env: Mapping[str, str] | None = None) -> bytes:
        """The command's stdout; raise `error` if it fails."""
        run = self.run(args, input=input, env=env)
        self.check(run, args)
        return run.stdout

    def text(self, args: Sequence[str], *, input: bytes | None = None,
             env: Mapping[str, str] | None = None) -> str:
        """`output` as text (undecodable bytes kept as surrogates)."""
        return self.output(args, input=input, env=env).decode("utf-8", "surrogateescape")

    def check(self, run: Run, args: Sequence[str]) -> None:
        if run.returncode != 0:
            raise self.error(f"git {args[0]} in {self.worktree} failed: "
                             f"{last_lines(run.stderr)}")

    def run_retrying_index(self, args: Sequence[str], *, input: bytes | None = None,
                           env: Mapping[str, str] | None = None,
                           lock_timeout: float = 10.0) -> Run:
        """`run` a command that takes ``index.lock``, again while it fails
        because another git process holds it, for up to `lock_timeout` s."""
        deadline = time.monotonic() + lock_timeout
        while True:
            run = self.run(args, input=input, env=env)
            if run.returncode == 0 or b"index.lock" not in run.stderr \
                    or time.monotonic() > deadline:
                return run
            time.sleep(INDEX_RETRY_PAUSE)

    def start(self, args: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``git args`` in the background (stdout dropped, stderr
        piped); the caller waits for it and closes its stderr."""
        return subprocess.Popen([self.executable, *args], cwd=self.worktree,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=self.environment())

    def changed_store_files(self, prefix: str) -> set[str]:
        """The store's relpaths (below `prefix` in the work tree) that git
        status reports as differing anywhere between HEAD, the index and the
        work tree, ignored files included."""
        # GIT_OPTIONAL_LOCKS=0: status must not take index.lock to refresh
        # the index (it died on ENOSPC writing it, and a full disk kept the
        # store from opening); the index is ours to update (`index`).
        out = self.text([*STATUS, "--", f":(literal){prefix}" if prefix else "."],
                        env={"GIT_OPTIONAL_LOCKS": "0"})
        return set(parse_status(out, prefix))


def parse_status(out: str, prefix: str) -> dict[str, str]:
    """The store files in ``git status --porcelain=v1 -z --no-renames``
    output (`STATUS`): relpath (below `prefix`) -> git's two-letter code."""
    found = {}
    for item in out.split("\0"):
        path = item[3:]
        if len(item) < 4 or not path.startswith(prefix):
            continue
        relpath = path[len(prefix):]
        if is_store_file(relpath):
            found[relpath] = item[:2]
    return found


def last_lines(text: bytes | str, count: int = 3) -> str:
    """The last `count` non-empty lines of a command's output, on one line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no message"
