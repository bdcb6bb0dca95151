"""Development environment for the README's two commands.

`python3 examples/demo.py` and `python3 tests/run.py` both call `enter()`
first.  It needs Python 3.11, the newest Python that cinderlib 5.2.0 and
cinder 23 run on: started by another Python, it finds a 3.11 interpreter
(``python3.11`` on the PATH, pyenv's, or ``$GITPERSIST_PYTHON``) and runs the
script again with it, or says in one line that it needs one.  Then it
creates `.venv` next to this file, installs gitpersist (editable) with the
extras the demo and the tests need and the real cinderlib stack pinned by
`constraints/cinderlib-2023.2.txt`, and runs the script again with the
virtual environment's interpreter.  The install is skipped when
`pyproject.toml` and the constraints are unchanged since the last one, so
both commands are idempotent and cheap the second time.  The benchmarks'
plotting extra is not installed (see benchmarks/README.md).

Only the standard library is used here: this runs before anything is
installed.  Failures are one line on stderr and exit status 1, never a
traceback.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GITPERSIST_VENV", ROOT / ".venv"))
CONSTRAINTS = ROOT / "constraints" / "cinderlib-2023.2.txt"
STAMP = VENV / "gitpersist-install.stamp"
EXTRAS = "cinderlib,test,docs"
STACK_PYTHON = "3.11"       # the newest Python cinderlib 5.2.0 and cinder 23 run on

# What a usable interpreter prints: its version, once venv and pip can be made.
_PROBE = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"


def _say(message: str) -> None:
    print(f"devenv: {message}", file=sys.stderr)


def _fail(message: str) -> SystemExit:
    _say(message)
    return SystemExit(1)


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _version_of(python: str | os.PathLike[str]) -> str | None:
    """"3.11" for an interpreter that can make a venv with pip; None for
    anything else (missing, a pyenv shim with no such version, no ensurepip)."""
    try:
        done = subprocess.run([os.fspath(python), "-c", _PROBE], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _candidates(version: str) -> list[str]:
    """Where a Python `version` may be, best first."""
    found = []
    if os.environ.get("GITPERSIST_PYTHON"):
        found.append(os.environ["GITPERSIST_PYTHON"])
    on_path = shutil.which(f"python{version}")
    if on_path:
        found.append(on_path)
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found += sorted(glob.glob(os.path.join(pyenv, "versions", f"{version}.*", "bin",
                                           f"python{version}")), reverse=True)
    return found


def find_python(version: str) -> str | None:
    """An interpreter of Python `version` ("3.12") that can make a virtual
    environment, or None: this one, ``$GITPERSIST_PYTHON``, ``python3.12`` on
    the PATH, or pyenv's."""
    if "%d.%d" % sys.version_info[:2] == version:
        return sys.executable
    for candidate in _candidates(version):
        if _version_of(candidate) == version:
            return candidate
    return None


def stack_python() -> str:
    """The interpreter to run the demo and tests with (a Python 3.11), or
    exit saying, in one line, which one is needed."""
    python = find_python(STACK_PYTHON)
    if python is None:
        this = "%d.%d" % sys.version_info[:2]
        raise _fail(f"the demo and the tests need Python {STACK_PYTHON} (cinderlib 5.2.0 "
                    f"and cinder 23 run on Python up to 3.11), and this is Python {this}: "
                    f"install python{STACK_PYTHON}, or set GITPERSIST_PYTHON to one")
    return python


def _run(command: list[str], what: str) -> None:
    """Run `command`; if it fails, exit with one line saying `what` failed
    (the command's own output is above it)."""
    try:
        subprocess.run(command, check=True)
    except FileNotFoundError:
        raise _fail(f"{what} failed: {command[0]} not found") from None
    except subprocess.CalledProcessError as exc:
        raise _fail(f"{what} failed (exit status {exc.returncode}; its output is above)") \
            from None


def _fingerprint() -> str:
    digest = hashlib.sha256(EXTRAS.encode())
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure(python: str | None = None) -> Path:
    """Create and fill the virtual environment, with `python` (default:
    `stack_python()`), if it is missing, stale or of another Python."""
    if _python().exists() and _version_of(_python()) != STACK_PYTHON:
        _say(f"{VENV} is not a Python {STACK_PYTHON} environment: making it again")
        shutil.rmtree(VENV)
    if not _python().exists():
        python = python or stack_python()
        _say(f"creating {VENV}")
        if Path(python).resolve() == Path(sys.executable).resolve():
            try:
                venv.EnvBuilder(with_pip=True).create(VENV)
            except (OSError, subprocess.CalledProcessError) as exc:
                raise _fail(f"creating {VENV} failed: {exc}") from None
        else:
            _run([python, "-m", "venv", str(VENV)], f"creating {VENV}")
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return _python()
    _say("installing gitpersist and the cinderlib 5.2.0 stack "
         "(first run takes a minute or two)")
    _run([str(_python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-c", str(CONSTRAINTS), "-e", f"{ROOT}[{EXTRAS}]"], "installing into .venv")
    STAMP.write_text(wanted)
    return _python()


def enter() -> None:
    """Make sure we run inside the project's virtual environment."""
    if VENV.exists() and Path(sys.prefix).resolve() == VENV.resolve():
        ensure(sys.executable)      # started with .venv/bin/python: up to date?
        return
    python = stack_python()
    if Path(python).resolve() != Path(sys.executable).resolve():
        _say(f"this is Python {'%d.%d' % sys.version_info[:2]}; "
             f"running again with {python}")
        os.execv(python, [python, *sys.argv])
    python = str(ensure(python))
    os.execv(python, [python, *sys.argv])
