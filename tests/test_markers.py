"""The ``cinderlib`` marker: every test that needs the cinderlib stack has
it (``-m "not cinderlib"`` is the library's suite, which runs on every
supported Python), and without the stack those tests skip, saying why."""

import pathlib

import pytest

from helpers import CINDERLIB_MISSING, run_python

TESTS = pathlib.Path(__file__).resolve().parent

# A pytest plugin: lists the collected tests that need the cinderlib stack
# (cinderlib, cinder, oslo, SQLAlchemy: by their fixtures, their module, or
# what their body imports) but lack the marker.
_UNMARKED = r'''
import inspect, re, sys
import pytest

NEEDS = re.compile(r'importorskip\("(cinderlib|cinder|sqlalchemy|oslo_\w+)"|cinderlib_run\('
                   r'|^\s*(import|from) (cinder(lib)?|sqlalchemy|oslo_\w+)\b',
                   re.M)
FIXTURES = {"cinderlib_setup", "cinderlib_store", "fresh_plugin"}


class Unmarked:
    def pytest_collection_modifyitems(self, items):
        for item in items:
            module = inspect.getsource(item.module)
            source = inspect.getsource(getattr(item.function, "__wrapped__", item.function))
            needs = (FIXTURES & set(item.fixturenames) or NEEDS.search(source)
                     or re.search(r'^pytest\.importorskip\("cinderlib"', module, re.M))
            if needs and item.get_closest_marker("cinderlib") is None:
                print("UNMARKED", item.nodeid)


sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "",
                      sys.argv[1]], plugins=[Unmarked()]))
'''


@pytest.mark.cinderlib
def test_every_test_that_needs_cinderlib_is_marked():
    pytest.importorskip("cinderlib", reason=CINDERLIB_MISSING)   # to collect them all
    done = run_python(_UNMARKED, str(TESTS), check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    unmarked = [line for line in done.stdout.splitlines() if line.startswith("UNMARKED")]
    assert unmarked == []


def test_without_cinderlib_its_tests_skip_saying_why(python_without):
    done = python_without(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        import pytest
        sys.exit(pytest.main(["-q", "-rs", "-p", "no:cacheprovider", "-m", "cinderlib",
                              {str(TESTS)!r}]))
    """)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    summary = out.strip().splitlines()[-1]
    assert " skipped" in summary and "passed" not in summary and "failed" not in summary \
        and "error" not in summary, summary
    reasons = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert reasons and all(CINDERLIB_MISSING in line for line in reasons), reasons
