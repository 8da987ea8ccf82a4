"""The public names superparams exports, pinned so that a change to them is deliberate."""

from __future__ import annotations

import superparams

PUBLIC = [
    "EngineError",
    "Experiment",
    "ExperimentError",
    "IdentityError",
    "Interrupted",
    "LoadError",
    "SearchSpaceError",
    "Space",
    "StoreConflictError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "SuperparamsError",
    "UsageError",
    "WorkerError",
    "choice",
    "columns",
    "derived",
    "entrypoint",
    "loguniform",
    "randint",
    "search",
    "seeds",
    "uniform",
    "value",
]


def test_all_is_the_sorted_public_api():
    """superparams.__all__ lists exactly the public names, sorted."""
    assert superparams.__all__ == PUBLIC


def test_every_public_name_is_importable():
    """Each name in __all__ is an attribute of the package, defined in superparams."""
    for name in superparams.__all__:
        member = getattr(superparams, name)
        assert member.__module__.startswith("superparams."), name


def test_version_is_a_string():
    """superparams.__version__ is loaded on demand and is a version string."""
    assert isinstance(superparams.__version__, str)
    assert superparams.__version__[0].isdigit()
