"""Run the whole test suite: `python3 tests/run.py [pytest args]`.

Creates (or reuses) `.venv` with gitpersist and the pinned cinderlib 5.2.0
stack, then runs pytest inside it, slow tests included."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import devenv  # noqa: E402

devenv.enter()

import pytest  # noqa: E402

args = sys.argv[1:]
if not any(not arg.startswith("-") for arg in args):      # no paths given: everything
    args.append(str(pathlib.Path(__file__).resolve().parent))
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *args]))
