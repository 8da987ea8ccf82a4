"""Sphinx's settings for the documentation site: Markdown pages (MyST) in the furo theme.

The build reaches no network: no intersphinx, no remote images, and MyST and furo ship
their assets inside their wheels. ``sphinx-build -W --keep-going -b html docs
docs/_build/html`` builds it; ``.ci/run`` does, with warnings as errors.
"""

from __future__ import annotations

import re
from pathlib import Path

_version = (Path(__file__).parents[1] / "src" / "superparams" / "_version.py").read_text()

project = "superparams"
author = "the superparams authors"
release = version = re.search(r'"(.+)"', _version).group(1)  # type: ignore[union-attr]

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Links such as running.md#stopping-early resolve to headings, on GitHub and here alike.
myst_heading_anchors = 3

html_theme = "furo"
html_title = "superparams"
html_static_path: list[str] = []
