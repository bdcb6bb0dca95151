"""Sphinx configuration of gitpersist's API reference, built from the
docstrings by autodoc:

    pip install -e '.[docs,cinderlib]'      (Python 3.11: FilePersistence needs cinderlib)
    python -m sphinx -W -b html docs build/docs      (build/ is ignored by git)

tests/test_docs.py builds it so, with warnings as errors."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gitpersist  # noqa: E402

project = "gitpersist"
author = "gitpersist developers"
copyright = "gitpersist developers"
release = version = gitpersist.__version__

extensions = ["sphinx.ext.autodoc"]
root_doc = "index"
source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "*.md"]

# The docstrings name code in `single backquotes`: Python objects, resolved
# where Sphinx can, plain code where it cannot (no warning: nitpicky is off).
default_role = "py:obj"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# A class's docstring and its __init__'s, one after the other.
autoclass_content = "both"

html_theme = "alabaster"
html_title = f"gitpersist {release}"
