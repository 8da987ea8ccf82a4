"""``python -m superparams ...`` is the ``experiment`` command."""

from __future__ import annotations

import sys

from superparams._cli import main, working_directory_after_stdlib

working_directory_after_stdlib()
sys.exit(main(prog="python -m superparams"))
