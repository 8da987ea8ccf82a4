"""The core dependencies are tested at both ends of the ranges ``pyproject.toml`` allows.

``.ci/run`` runs the whole suite on the newest versions and the fast tier on the oldest,
which ``.ci/oldest.txt`` pins; these tests keep that file and the floors in step.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).parent.parent


def floors() -> dict[str, Version]:
    """Each core dependency of ``pyproject.toml`` and the oldest version it allows."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib, to read pyproject.toml, is 3.11+")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        lowest = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lowest) == 1, f"{text!r} has no single floor (>=) to test"
        found[canonicalize_name(requirement.name)] = Version(lowest[0])
    return found


def pins() -> dict[str, Version]:
    """The versions ``.ci/oldest.txt`` pins."""
    found = {}
    for line in (ROOT / ".ci/oldest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line!r} in .ci/oldest.txt pins no version (name==version)"
            found[canonicalize_name(name)] = Version(version)
    return found


def test_the_oldest_versions_tested_are_the_floors():
    """Every core dependency is pinned in .ci/oldest.txt at the floor pyproject.toml
    declares, and nothing else is: raising a floor means raising its pin."""
    assert pins() == floors()
