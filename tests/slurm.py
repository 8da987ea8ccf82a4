"""Whether the Slurm tests can run: a cluster that answers ``sinfo``.

On a developer's machine with no Slurm, the Slurm tests skip, saying so. ``.ci/run``
starts a single-node Slurm and sets ``SUPERPARAMS_TEST_SLURM=1``: then a cluster that
does not answer fails them instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

REQUIRED = os.environ.get("SUPERPARAMS_TEST_SLURM") == "1"


@functools.cache
def _answer() -> str:
    """Why no Slurm cluster can be used here, or "" if one answers."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm here (sinfo and sbatch are not on the PATH)"
    try:
        done = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "Slurm's sinfo did not answer within 20 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [""])[-1]
        return f"no Slurm cluster answers sinfo ({last})"
    if not done.stdout.strip():
        return "the Slurm cluster has no nodes"
    return ""


def need_slurm() -> None:
    """Skip the calling test when no Slurm cluster answers (fail it under .ci/run)."""
    why = _answer()
    if why and REQUIRED:
        pytest.fail(f"SUPERPARAMS_TEST_SLURM=1 but {why}; see .ci/slurm_up.sh")
    if why:
        pytest.skip(f"{why}; .ci/run starts one (.ci/slurm_up.sh)")
