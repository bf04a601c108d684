"""Sphinx configuration of the structdrop documentation.

Build (warnings are errors; works offline):

    sphinx-build -W --keep-going -b html docs docs/_build/html

or ``bash .ci/docs``. structdrop must be importable (an installed or editable build): the API page,
the command-line reference and the gallery import it. The gallery runs every script under
docs/gallery/ during the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import structdrop

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))  # local extensions: API from __all__, CLI, benchmark tables

# Figures of the gallery are drawn off-screen.
os.environ.setdefault("MPLBACKEND", "Agg")

# -- project --
project = "structdrop"
author = "structdrop developers"
copyright = "structdrop developers"  # noqa: A001 - the name Sphinx reads
release = structdrop.__version__
version = ".".join(release.split(".")[:2])

# -- extensions --
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx_gallery.gen_gallery",
    "sphinx_copybutton",
    # local (docs/_ext)
    "structdrop_api",
    "structdrop_cli",
    "structdrop_bench",
]
# No intersphinx: the build must work without network (CI has none).

# Smart quotes, but no smart dashes: "--theta" must stay two hyphens in option help texts.
smartquotes_action = "qe"

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "gallery", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# MyST: $...$ and $$...$$ math, ::: fences, anchors for headings down to level 3.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc + napoleon (Google-style docstrings, as in the code).
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True

# sphinx-gallery: every docs/gallery/plot_*.py runs during the build; a failing example fails it.
sphinx_gallery_conf = {
    "examples_dirs": "gallery",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"/_",
    "only_warn_on_example_error": False,
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "min_reported_time": 1,
    "show_memory": False,
    "reference_url": {},
}

# copybutton: do not copy prompts.
copybutton_prompt_text = r">>> |\.\.\. |\$ "
copybutton_prompt_is_regexp = True

# -- HTML --
html_theme = "furo"
html_title = f"structdrop {release}"
html_static_path: list[str] = []
