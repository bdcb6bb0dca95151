"""What `pip install gitpersist` gets: every module, and py.typed."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_py_typed(tmp_path):
    source = tmp_path / "source"        # a clean copy: no build/ or egg-info to borrow from
    shutil.copytree(ROOT / "gitpersist", source / "gitpersist",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                          "--disable-pip-version-check", "-w", str(tmp_path), str(source)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    [wheel] = tmp_path.glob("gitpersist-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {str(path.relative_to(ROOT)) for path in (ROOT / "gitpersist").rglob("*.py")}
    assert wanted - names == set()
    assert "gitpersist/py.typed" in names
