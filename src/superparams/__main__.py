"""``python -m superparams ...`` is the ``experiment`` command."""

from __future__ import annotations

import sys

from superparams.cli import main

sys.exit(main(prog="python -m superparams"))
