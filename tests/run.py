"""Run the test suite.

    python3 tests/run.py [pytest args]

        The whole suite, slow tests included, in `.venv` (created or reused
        by devenv: Python 3.11, gitpersist with the cinderlib 5.2.0 stack
        pinned by constraints/).

    python3 tests/run.py --fresh 3.12 [--extras test] [pytest args]

        In a new virtual environment of that Python (removed afterwards),
        with ``pip install -e '.[EXTRAS]'`` and no constraints: the newest
        releases the project allows.  How .ci/run checks the library on
        Python 3.12 and 3.13, and the cinderlib extra's bounds on 3.11.  On a
        machine without that Python it says so in one line and exits 0.
"""

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import devenv  # noqa: E402

# What the log of a fresh environment shows: the versions it got.
_VERSIONS = """\
import platform
from importlib.metadata import version, PackageNotFoundError
names = ["GitPython", "filelock", "orjson", "watchdog", "cinderlib", "cinder", "SQLAlchemy",
         "oslo.versionedobjects"]
found = []
for name in names:
    try:
        found.append(f"{name} {version(name)}")
    except PackageNotFoundError:
        pass
print(f"Python {platform.python_version()}: " + ", ".join(found))
"""


def with_paths(args: list[str]) -> list[str]:
    """pytest's arguments, with the whole tests folder if they name no path."""
    options_with_values = {"-m", "-k", "-p", "--deselect", "--ignore"}
    named = [arg for index, arg in enumerate(args)
             if not arg.startswith("-") and (index == 0 or args[index - 1]
                                             not in options_with_values)]
    return args if named else [*args, str(ROOT / "tests")]


def fresh(version: str, extras: str, args: list[str]) -> int:
    python = devenv.find_python(version)
    if python is None:
        print(f"tests/run.py: no Python {version} on this machine (python{version}, "
              f"pyenv, $GITPERSIST_PYTHON): its run is skipped", flush=True)
        return 0
    folder = pathlib.Path(tempfile.mkdtemp(prefix=f"gitpersist-py{version}-"))
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PIP_CONSTRAINT")}
    try:
        subprocess.run([python, "-m", "venv", str(folder)], check=True)
        venv_python = str(folder / "bin" / "python")
        # pip 23.2 (Python 3.11.7's and 3.12.1's own) backtracks for ten
        # minutes over the cinderlib extra's bounds; pip 26 resolves it in one.
        subprocess.run([venv_python, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "--upgrade", "pip"], check=True, env=env)
        print(f"tests/run.py: pip install -e '.[{extras}]' into a new Python {version} "
              "environment (no constraints)", flush=True)
        subprocess.run([venv_python, "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "-e", f"{ROOT}[{extras}]"],
                       check=True, env=env)
        subprocess.run([venv_python, "-c", _VERSIONS], check=True, env=env)
        return subprocess.run([venv_python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *with_paths(args)], cwd=ROOT, env=env).returncode
    except subprocess.CalledProcessError as exc:
        print(f"tests/run.py: setting up Python {version} failed "
              f"(exit status {exc.returncode}; its output is above)", flush=True)
        return 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--fresh", metavar="VERSION")
    parser.add_argument("--extras", default="test")
    known, rest = parser.parse_known_args()
    if known.fresh:
        return fresh(known.fresh, known.extras, rest)
    devenv.enter()
    import pytest
    return pytest.main(["-q", "-p", "no:cacheprovider", *with_paths(rest)])


if __name__ == "__main__":
    sys.exit(main())
