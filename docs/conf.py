"""Sphinx configuration of the pdeinv documentation (markdown pages through myst-parser, API by autodoc + numpydoc).

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pdeinv  # noqa: E402

project = "pdeinv"
author = "pdeinv authors"
copyright = "pdeinv authors, MIT licence"
release = version = pdeinv.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"pdeinv {release}"

# Guide pages listed in index.md that the build tolerates being absent: their toctree entries are
# dropped when the file does not exist.
OPTIONAL_PAGES = ("own-problem", "methods", "speed")


def _drop_missing_pages(app, docname, source):
    if docname == "index":
        for page in OPTIONAL_PAGES:
            if not (Path(app.srcdir) / f"{page}.md").exists():
                source[0] = source[0].replace(f"\n{page}\n", "\n")


def setup(app):
    app.connect("source-read", _drop_missing_pages)
