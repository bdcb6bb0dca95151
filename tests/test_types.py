"""Type hints: the package is ``mypy --strict`` clean (pyproject.toml's
[tool.mypy]), and a user's script on the public API type-checks against it."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy is in the test extra")

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def mypy(*args: str, cwd: pathlib.Path = ROOT, mypypath: pathlib.Path | None = None) -> str:
    """Run mypy in a new process (its results do not depend on this one's
    imports); return its report, failing the test if it found errors."""
    env = {**os.environ, "MYPYPATH": str(mypypath or ROOT)}
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                             "--cache-dir", os.devnull, *args],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_the_package_is_mypy_strict_clean():
    out = mypy("--config-file", str(PYPROJECT), "-p", "gitpersist")
    assert out.startswith("Success: no issues found"), out


USER_SCRIPT = '''
    """A user's script: every public name, with the types a user relies on."""
    import datetime
    from pathlib import Path
    from typing import Any, assert_type

    from gitpersist import (ABSENT, Change, ConfigError, ConflictError, CorruptRecord,
                            FormatError, GitpersistError, HistoryError, InvalidDocument,
                            InvalidId, LockTimeout, Store, StoreError, SyncError,
                            describe_change)
    from gitpersist.history import History, Version
    from gitpersist.options import Options
    from gitpersist.sync import Conflict, SyncReport


    def by_rack(doc: dict[str, Any]) -> object:
        return doc.get("rack")


    def main(path: Path) -> None:
        store = Store(path, git=True, file_mode="0640", dir_mode=0o750, watch="off",
                      indexes={"hosts": {"rack": None, "by_rack": by_rack}},
                      secret_fields={"hosts": ["password"]}, remote="origin")
        with store:
            assert_type(store.options, Options)
            assert_type(store.put("hosts", "web-1", {"rack": "r1"}, expect=ABSENT), str)
            revision = store.revision("hosts", "web-1")
            assert_type(revision, str | None)
            if revision is not None:
                store.put("hosts", "web-1", {"rack": "r2"}, expect=revision, message="move")
            doc = store.get("hosts", "web-1")
            if doc is not None:
                assert_type(store.revision_of("hosts", doc), str)
            assert_type(store.find("hosts", rack="r2"), list[dict[str, Any]])
            assert_type(store.all("hosts"), list[dict[str, Any]])
            assert_type(store.types(), list[str])
            assert_type(store.corrupt("hosts"), list[CorruptRecord])
            assert_type(store.secret_fields, dict[str, list[str]])
            with store.batch("two at once") as same:
                assert_type(same, Store)
                assert_type(same.delete("hosts", "web-1"), bool)
            versions = store.versions("hosts", "web-1", limit=10)
            assert_type(versions, list[Version])
            first = versions[0]
            assert_type(first.commit, str)
            assert_type(first.time, datetime.datetime)
            assert_type(store.get_at("hosts", "web-1", first.commit), dict[str, Any] | None)
            assert_type(store.diff("hosts", "web-1", first.commit), str)
            assert_type(store.restore("hosts", "web-1", first.commit), str | None)
            assert_type(store.history, History | None)
            store.flush()
            report = store.sync()
            assert_type(report, SyncReport)
            assert_type(report.conflicts, list[Conflict])
            assert_type(report.summary(), str)
            for conflict in report.conflicts:
                assert_type(conflict.winner, str)
            assert_type(describe_change("hosts", "web-1", None, {"rack": "r1"}), str)
            change = Change("hosts/ab/web-1.json", b"{}", None)
            assert_type(change.relpath, str)
        errors: list[type[GitpersistError]] = [
            ConfigError, ConflictError, CorruptRecord, FormatError, HistoryError,
            InvalidDocument, InvalidId, LockTimeout, StoreError, SyncError]
        print(errors)
'''


@pytest.mark.slow
def test_a_users_script_on_the_public_api_type_checks_strict(tmp_path):
    """Errors in the library itself are the test above's; here only what a
    user's code sees of the annotations (as for an installed package)."""
    script = tmp_path / "user_script.py"
    script.write_text(textwrap.dedent(USER_SCRIPT))
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = true\nfollow_imports = silent\n")
    mypy("--config-file", str(tmp_path / "mypy.ini"), str(script), cwd=tmp_path)
