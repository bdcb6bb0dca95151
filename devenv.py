"""Development environment for the README's two commands.

`python3 examples/demo.py` and `python3 tests/run.py` both call
`enter()` first: it creates `.venv` next to this file, installs gitpersist
(editable) with the real cinderlib stack pinned by
`constraints/cinderlib-2023.2.txt`, and re-executes the calling script with
the virtual environment's interpreter.  The install is skipped when
`pyproject.toml` and the constraints are unchanged since the last one, so
both commands are idempotent and cheap the second time.

Only the standard library is used here: this runs before anything is
installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("GITPERSIST_VENV", ROOT / ".venv"))
CONSTRAINTS = ROOT / "constraints" / "cinderlib-2023.2.txt"
STAMP = VENV / "gitpersist-install.stamp"
EXTRAS = "cinderlib,test,bench"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    digest = hashlib.sha256(EXTRAS.encode())
    for path in (ROOT / "pyproject.toml", CONSTRAINTS):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure() -> Path:
    """Create and fill the virtual environment if it is missing or stale."""
    if not _python().exists():
        print(f"devenv: creating {VENV}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = _fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return _python()
    print("devenv: installing gitpersist and the cinderlib 5.2.0 stack "
          "(first run takes a minute or two)", file=sys.stderr)
    subprocess.run(
        [str(_python()), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", "-c", str(CONSTRAINTS),
         "-e", f"{ROOT}[{EXTRAS}]"],
        check=True,
    )
    STAMP.write_text(wanted)
    return _python()


def enter() -> None:
    """Make sure we run inside the project's virtual environment."""
    python = ensure()
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(python), [str(python), *sys.argv])
