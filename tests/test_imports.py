"""`import superparams` stays light: no data-frame, display or cluster library is loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["dask", "matplotlib", "numpy", "pandas", "polars", "pyarrow", "ray", "rich", "submitit"]
HEAVY += ["plotly", "starlette", "uvicorn"]  # the view's web parts

SCRIPT = """
import json, sys
import superparams
from superparams import Experiment, search

class Train(Experiment):
    lr: float = search(0.1, 0.01)

[s.id for s in Train()]
print(json.dumps(sorted(m.partition(".")[0] for m in sys.modules)))
"""


def test_import_loads_no_heavy_library():
    """Importing superparams and using a space loads none of the heavy libraries."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
