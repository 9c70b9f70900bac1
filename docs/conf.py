"""Sphinx configuration of the pz-rail-deepdisc documentation (built by ``make test``: tests/test_docs.py)."""

import os
import re
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src")))
sys.path.insert(0, os.path.abspath(os.path.dirname(__file__)))  # cli_parser.py

project = "pz-rail-deepdisc"
author = "LSST Dark Energy Science Collaboration (DESC)"
copyright = "LSST DESC, MIT License"  # noqa: A001 - Sphinx's name
try:
    release = _package_version("pz-rail-deepdisc")
except PackageNotFoundError:  # a source tree without an install
    release = "unknown"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinxarg.ext",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autosummary_generate = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path = []
html_theme_options = {"description": "Image-based photo-z for JWST deep fields, as a RAIL plugin"}

_CECI_OPTION = re.compile(r"^(\w+): \[(.*?)\] default=(.*)$")
_SUBSTITUTION = re.compile(r"(?<!\\)\|([^|\s`][^|`]*?)\|")


def _docstring(app, what, name, obj, options, lines):
    """Escape ``|x|`` (no RST substitutions are used) and turn ceci's option list into numpydoc parameters."""
    for k, line in enumerate(lines):
        line = _SUBSTITUTION.sub(r"\\|\1\\|", line)
        match = _CECI_OPTION.match(line)
        if match:
            default = match.group(3).strip() or "''"
            line = f"{match.group(1)} : {match.group(2)}, default {default}"
        lines[k] = line


def setup(app):
    """Connect the docstring hook before numpydoc parses the docstrings."""
    app.connect("autodoc-process-docstring", _docstring, priority=400)
