"""gitpersist.cinder as a package: what imports without the cinderlib stack,
what says to install it, and the entry point ``gitpersist.plugin``."""

from __future__ import annotations

import pytest

from gitpersist.cinder import INSTALL, install_hint


def test_the_hint_names_the_python_the_stack_runs_on():
    assert install_hint((3, 11)) == "install gitpersist[cinderlib]"
    for python in ((3, 12), (3, 13)):
        hint = install_hint(python)
        assert hint.startswith("install gitpersist[cinderlib] on Python 3.11 (")
        assert f"not {python[0]}.{python[1]}, where the extra installs nothing" in hint


@pytest.mark.parametrize("module", ["gitpersist.plugin", "gitpersist.cinder.plugin",
                                    "gitpersist.cinder.records"])
def test_without_cinderlib_the_plugin_says_what_to_install(python_without, module):
    done = python_without(f"""
        try:
            import {module}
        except ImportError as exc:
            print(type(exc).__name__, exc.name)
            print(exc)
    """, blocked=["cinderlib"])
    assert done.returncode == 0, done.stderr
    kind, message = done.stdout.splitlines()
    assert kind == "ModuleNotFoundError cinderlib"
    assert message.startswith(f"gitpersist's cinderlib plugin needs cinderlib: {INSTALL} (")
    assert "No module named 'cinderlib'" in message


def test_the_package_imports_nothing_of_cinderlib(python_without):
    done = python_without("""
        import sys
        import gitpersist.cinder, gitpersist.cinder.schema
        print(sorted(name for name in sys.modules if name.split(".")[0] in
                     ("cinderlib", "cinder", "sqlalchemy") or name.startswith("oslo")))
    """)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


@pytest.mark.cinderlib
def test_the_entry_point_is_the_plugin_and_its_names_stay():
    pytest.importorskip("cinderlib")
    from importlib.metadata import entry_points

    import gitpersist.cinder.plugin as plugin
    import gitpersist.plugin as shim
    [entry] = entry_points(group="cinderlib.persistence.storage", name="file")
    assert entry.value == "gitpersist.plugin:FilePersistence"
    assert entry.load() is plugin.FilePersistence
    for name in shim.__all__:
        assert getattr(shim, name) is getattr(plugin, name), name
    assert {"FilePersistence", "OPTIONS", "parse_config", "INDEXES", "SECRET_FIELDS",
            "TYPES", "VOLUMES", "SNAPSHOTS", "CONNECTIONS", "KEY_VALUES", "ovo_record",
            "volume_record", "ovo_from_record", "volume_from_record",
            "backend_of_host"} <= set(shim.__all__)
