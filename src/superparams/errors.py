"""The errors superparams raises, each one a message a person can act on.

Every error is a :class:`SuperparamsError`, and also the builtin it resembles, so
``except ValueError`` keeps working in code that does not know superparams::

    SuperparamsError
     ├── SearchSpaceError (ValueError)      a search space that cannot be built or indexed
     ├── ExperimentError (TypeError)        an Experiment class or instance used the wrong way
     ├── IdentityError (TypeError)          a value that has no stable encoding for a setting's id
     ├── StoreError (RuntimeError)          a results folder that cannot be used; exit code 3
     │    ├── StoreWriteError (OSError)     could not be written: disk full, read-only; 3
     │    ├── StoreLockedError              another run holds the results folder; 4
     │    └── StoreConflictError            another experiment's results folder; 2
     ├── UsageError (ValueError)            bad input on the command line; exit code 2
     ├── LoadError (ImportError)            the experiment's module raised on import; 5
     ├── WorkerError (RuntimeError)         a worker could not start, so nothing can run; 5
     ├── EngineError (ConnectionError)      an engine or cluster could not be reached; 6
     └── Interrupted                        a run stopped by Ctrl-C, SIGTERM or SIGHUP; 130

Each class carries its ``exit_code`` (1 unless it says otherwise); only the command line
turns an error into a message and that code. The others: 0 every setting completed, 1 some
failed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SuperparamsError(Exception):
    """Root of every error superparams raises."""

    exit_code = 1


class SearchSpaceError(SuperparamsError, ValueError):
    """A search space that cannot be built, sized or indexed."""


class ExperimentError(SuperparamsError, TypeError):
    """An Experiment class or instance used in a way it does not support."""


class IdentityError(SuperparamsError, TypeError):
    """A parameter value that has no stable encoding, so its setting has no id."""


class StoreError(SuperparamsError, RuntimeError):
    """A results folder that cannot be read or written."""

    exit_code = 3


class StoreWriteError(StoreError, OSError):
    """A results folder that could not be written (no space left, read-only, permissions).

    What was stored before is intact; the message says how much.
    """


class StoreLockedError(StoreError):
    """Another run of the same experiment holds its results folder."""

    exit_code = 4  # retry later


class StoreConflictError(StoreError):
    """A results folder that holds the results of another experiment."""

    exit_code = 2  # like a usage error: the fix is a folder or a name, and nothing ran


class UsageError(SuperparamsError, ValueError):
    """Bad input on the command line."""

    exit_code = 2


class LoadError(SuperparamsError, ImportError):
    """The experiment's file raised while being imported; the message holds its traceback."""

    exit_code = 5


class WorkerError(SuperparamsError, RuntimeError):
    """A worker could not start, so nothing can run (the experiment failed to load in it)."""

    exit_code = 5


class EngineError(SuperparamsError, ConnectionError):
    """An engine or cluster a run needs could not be reached (raised by engines)."""

    exit_code = 6


class Interrupted(SuperparamsError):
    """A run stopped by Ctrl-C, SIGTERM or SIGHUP; what finished is recorded, and the same
    command resumes. Its message is empty when the run's summary has said so already."""

    exit_code = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """A ``" (did you mean 'x'?)"`` suffix naming the closest candidate, or ``""``.

    >>> did_you_mean("bach_size", ["batch_size", "steps"])
    " (did you mean 'batch_size'?)"
    """
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
