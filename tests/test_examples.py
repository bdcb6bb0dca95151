"""The generic examples run with just the library: no cinderlib, no devenv,
no re-run in another interpreter."""

import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

EXPECTED = {
    "generic_store.py": ["put(..., expect=<stale revision>)            ConflictError: hosts",
                         "get('hosts', 'web-1') after restore",
                         "the same store from the command line"],
    "ops_repo.py": ["the user's work is as it was:          True",
                    "the store's commits touch only metadata/: True",
                    "the staged change is still staged:      True"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_generic_example_runs_with_the_library_alone(python_without, name):
    done = python_without(f"""
        import runpy, sys
        prefix = sys.prefix
        runpy.run_path({str(EXAMPLES / name)!r}, run_name="__main__")
        print("same process:", sys.prefix == prefix, "devenv" not in sys.modules)
    """)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for line in EXPECTED[name]:
        assert line in done.stdout
    assert done.stdout.rstrip().endswith("same process: True True")

