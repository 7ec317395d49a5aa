"""Sphinx configuration: furo, autodoc with Google-style docstrings, sphinxcontrib-trio.

Built by .ci/run with ``python -m sphinx -W -b html docs <out>``; nothing is
fetched at build time (no intersphinx).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # examples/ for literalinclude-d code, trioweb if not installed

import trioweb  # noqa: E402 - after the path is set

project = "trioweb"
author = "the trioweb developers"
copyright = "the trioweb developers"
release = trioweb.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinxcontrib_trio",
    "myst_parser",  # docs/design.md, which is Markdown
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "build", ".venv"]
root_doc = "index"

# Google-style docstrings only.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = [("Cancellation", "notes_style")]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# No "show-inheritance" by default: the public classes' bases are private
# (RouteDecorators, _MultiMapping); exceptions show theirs (docs/api.rst).
autodoc_default_options = {"members": True}
# References to names outside the docs (trio.Nursery, attrs, hypercorn) cannot
# resolve without intersphinx, which would need the network: keep them quiet,
# as Sphinx does by default.
nitpicky = False

html_theme = "furo"
html_title = f"trioweb {release}"
html_static_path = ["_static"]
