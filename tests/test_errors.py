"""The error tree: every error is drawn in errors.py, with its exit code and its builtin."""

from __future__ import annotations

import builtins
import inspect
import re

import pytest

import superparams
from superparams import errors

CLASSES = [
    member
    for _, member in inspect.getmembers(errors, inspect.isclass)
    if issubclass(member, errors.SuperparamsError)
]


def _drawn() -> dict[str, tuple[str | None, int | None]]:
    """Each class the docstring draws: the builtin in brackets and the exit code it says."""
    branch = re.compile(r"(?:├──|└──)\s+(\w+)(?: \((\w+)\))?\s.*?(?:(?:exit code |; )(\d+))?$")
    drawn = {}
    for line in (errors.__doc__ or "").splitlines():
        found = branch.search(line)
        if found:
            drawn[found[1]] = (found[2], int(found[3]) if found[3] else None)
    return drawn


def test_every_error_class_is_drawn():
    """The tree in the module docstring names every error class, and no other."""
    drawn = _drawn()
    assert set(drawn) | {"SuperparamsError"} == {c.__name__ for c in CLASSES}
    assert drawn["StoreLockedError"] == (None, 4)  # the drawing is read, codes included
    assert drawn["EngineError"] == ("ConnectionError", 6)


@pytest.mark.parametrize("error", CLASSES, ids=lambda c: c.__name__)
def test_the_tree_says_the_truth(error: type[errors.SuperparamsError]):
    """Each class is the builtin the tree names, and has the exit code it says (default 1)."""
    if error is errors.SuperparamsError:
        return
    builtin, code = _drawn()[error.__name__]
    if builtin is not None:
        assert issubclass(error, getattr(builtins, builtin))
    assert error.exit_code == (code if code is not None else 1)


@pytest.mark.parametrize("error", CLASSES, ids=lambda c: c.__name__)
def test_every_error_is_public(error: type[errors.SuperparamsError]):
    """A user can catch each of them by its name on the package."""
    assert getattr(superparams, error.__name__) is error
