"""What ``pip install 'gitpersist[...]'`` asks for, read from pyproject.toml.

The bounds of the cinderlib extra are checked for real by .ci/run, which
installs it without constraints and runs the plugin's contract suite."""

import pathlib
import tomllib

from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def requirements(extra: str, python: str) -> dict[str, Requirement]:
    """The requirements of `extra` that apply on Python `python`, by name."""
    found = {}
    for text in EXTRAS[extra]:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate(
                {"python_version": python, "python_full_version": f"{python}.0"}):
            found[requirement.name.lower()] = requirement
    return found


def test_the_cinderlib_extra_carries_what_cinder_23_needs_on_python_3_11():
    wanted = requirements("cinderlib", "3.11")
    assert set(wanted) == {"cinderlib", "cinder", "sqlalchemy", "oslo.versionedobjects"}
    assert list(wanted["cinderlib"].specifier.filter(["5.1.0", "5.2.0", "5.3.0"])) == ["5.2.0"]
    assert list(wanted["cinder"].specifier.filter(["22.1.0", "23.5.0", "24.0.0"])) == ["23.5.0"]
    assert not wanted["sqlalchemy"].specifier.contains("2.0.0")
    assert wanted["sqlalchemy"].specifier.contains("1.4.54")
    assert not wanted["oslo.versionedobjects"].specifier.contains("3.10.0")
    assert wanted["oslo.versionedobjects"].specifier.contains("3.9.0")


def test_the_cinderlib_extra_installs_nothing_where_the_stack_does_not_run():
    """Never half an install: on 3.12 and later, the extra is empty (and
    gitpersist.plugin says which Python it needs)."""
    for python in ("3.12", "3.13", "3.14"):
        assert requirements("cinderlib", python) == {}
        assert "fixtures" not in requirements("test", python)


def test_the_library_needs_four_packages_and_supports_3_11_to_3_13():
    assert sorted(Requirement(text).name for text in PROJECT["dependencies"]) == [
        "GitPython", "filelock", "orjson", "watchdog"]
    assert PROJECT["requires-python"] == ">=3.11"
    for python in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {python}" in PROJECT["classifiers"]
