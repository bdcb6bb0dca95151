"""devenv, behind the README's two commands: it finds the Python 3.11 the
cinderlib stack needs and runs the script again with it, or says in one line
what it needs; a failed step is one line, never a traceback."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import devenv  # noqa: E402

THIS = "%d.%d" % sys.version_info[:2]
OTHERS = [version for version in ("3.11", "3.12", "3.13") if version != THIS]

# Runs with one Python: if it is `target`, says so; else asks devenv to
# run it again with `target` (devenv.STACK_PYTHON stands in for 3.11).
PROBE = """\
import sys
sys.path.insert(0, {root!r})
import devenv
target = sys.argv[1]
if "%d.%d" % sys.version_info[:2] == target:
    print("ran with", target)
    sys.exit(0)
devenv.STACK_PYTHON = target
devenv.enter()
print("devenv.enter() returned")
"""


def probe(tmp_path, target, env=None):
    script = tmp_path / "probe.py"
    script.write_text(PROBE.format(root=str(ROOT)))
    return subprocess.run([sys.executable, str(script), target], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "GITPERSIST_VENV": str(tmp_path / "venv"),
                               **(env or {})})


def test_this_interpreter_is_found_for_its_own_version():
    assert devenv.find_python(THIS) == sys.executable


def test_an_absent_version_is_not_found():
    assert devenv.find_python("2.1") is None


def test_another_python_runs_the_script_again_with_the_one_needed(tmp_path):
    found = [(version, devenv.find_python(version)) for version in OTHERS]
    found = [(version, python) for version, python in found if python]
    if not found:
        pytest.skip(f"no Python {' or '.join(OTHERS)} on this machine")
    version, python = found[0]
    done = probe(tmp_path, version)
    assert (done.returncode, done.stdout) == (0, f"ran with {version}\n"), done.stderr
    assert done.stderr == f"devenv: this is Python {THIS}; running again with {python}\n"


def test_without_the_python_needed_one_line_says_which(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = probe(tmp_path, "3.99", env={"PATH": str(empty), "PYENV_ROOT": str(tmp_path),
                                        "GITPERSIST_PYTHON": ""})
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"devenv: the demo and the tests need Python 3.99 (cinderlib 5.2.0 and cinder 23 "
        f"run on Python up to 3.11), and this is Python {THIS}: install python3.99, "
        "or set GITPERSIST_PYTHON to one\n")
    assert not (tmp_path / "venv").exists()


def test_a_failed_step_is_one_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        devenv._run([sys.executable, "-c", "raise SystemExit(3)"], "installing into .venv")
    assert stopped.value.code == 1
    assert capsys.readouterr().err == (
        "devenv: installing into .venv failed (exit status 3; its output is above)\n")


def test_the_quick_start_installs_nothing_for_plots():
    assert set(devenv.EXTRAS.split(",")) == {"cinderlib", "test", "docs"}
