"""The ``experiment`` command: find an experiment, turn flags into overrides, run it.

This package is the command line's room, and :func:`main` its one door: the only place
that prints an error and picks the exit code. The rest of the house is called the way a
notebook calls it. Inside::

    _options.py  the option table: every option's spellings, commands, help, reader
    _parse.py    the grammar: from the words of a command line to a request
    _requests.py a typed request per command, checking its options as a whole
    _find.py     the experiments a name stands for, imported as Python would
    _values.py   text to values, by each field's annotation
    _spaces.py   a request's field values applied to each space the name stands for
    _help.py     the help texts
    _table.py    the one table renderer (rich in a terminal, aligned text otherwise)
    _shared.py   what the commands share: the store of a space, its plan, the results
    run.py  status.py  results.py  plot.py  report.py  view.py  logs.py  clean.py
    diff.py      one module per command (plot needs the plot extra; report and
                 view the view extra)

A command is a function ``(found, spaces, request, prog) -> None`` in :data:`COMMANDS`. It
prints what it has to say and ends by returning (exit code 0) or by raising: an error of
:mod:`superparams.errors` (its ``exit_code``), :class:`Exit` (1: some settings failed)
or :class:`~superparams.errors.Interrupted` (130). polars and rich are imported by the
commands that need them, never by ``experiment --help``.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._cli._help import command_help, experiment_help, general_help, usage
from superparams._cli._options import COMMAND_WORDS
from superparams._cli._parse import Words, fields_of, read, split
from superparams._cli._requests import Exit
from superparams.errors import Interrupted, SuperparamsError, UsageError

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._space import Space

__all__ = ["COMMANDS", "entrypoint", "main"]

Command = Callable[["Found", "list[Space[Any]]", Any, str], None]


# Each command's module is imported when it runs, so `experiment --help` loads none.
def _run(*args: Any) -> None:
    from superparams._cli.run import run

    run(*args)


def _status(*args: Any) -> None:
    from superparams._cli.status import status

    status(*args)


def _results(*args: Any) -> None:
    from superparams._cli.results import results

    results(*args)


def _plot(*args: Any) -> None:
    from superparams._cli.plot import plot

    plot(*args)


def _report(*args: Any) -> None:
    from superparams._cli.report import report

    report(*args)


def _view(*args: Any) -> None:
    from superparams._cli.view import view

    view(*args)


def _logs(*args: Any) -> None:
    from superparams._cli.logs import logs

    logs(*args)


def _clean(*args: Any) -> None:
    from superparams._cli.clean import clean

    clean(*args)


def _diff(*args: Any) -> None:
    from superparams._cli.diff import diff

    diff(*args)


#: The commands, by the word that names them (``run`` is never written).
COMMANDS: dict[str, Command] = {
    "run": _run,
    "status": _status,
    "results": _results,
    "plot": _plot,
    "report": _report,
    "view": _view,
    "logs": _logs,
    "clean": _clean,
    "diff": _diff,
}


#: The commands that only read a store: they use what its last run recorded of the
#: class instead of importing it, while the user's files are unchanged.
READS = frozenset({"status", "results", "plot", "report", "view", "logs"})


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "experiment",
    home: str | Path | None = None,
    standalone: bool = True,
) -> int:
    """Run the ``experiment`` command; return its exit code.

    0 when every setting completed, 1 when any failed, 2 for a usage error, 3 when the
    store could not be written or read, 4 when another run holds it, 5 when the
    experiment could not be loaded, 6 when an engine could not be reached, 130 when
    interrupted. Each error class carries its code (see :mod:`superparams.errors`).

    Args:
        argv: the words after the command (default: ``sys.argv[1:]``).
        prog: the command's name in help and usage lines.
        home: a folder to look for experiments in before the working directory.
        standalone: turn errors into a message and an exit code; False re-raises them
            (a run that ends with failed settings still returns 1).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        _main(args, prog, Path(home) if home else None)
    except Exit as end:
        return end.exit_code
    except SuperparamsError as error:
        if not standalone:
            raise
        if str(error):  # Interrupted after the run's summary has nothing more to say
            _error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        if not standalone:
            raise
        sys.stderr.write("\ninterrupted\n")
        return Interrupted.exit_code
    except BrokenPipeError:  # `experiment results X | head`: the reader left, fine
        if not standalone:
            raise
        _quiet_broken_pipe()
        return 0
    return 0


def entrypoint() -> None:
    """Run the ``experiment`` command from a package's ``__main__.py``.

    With ``experiments/__main__.py`` holding ``from superparams import entrypoint`` and
    ``entrypoint()``, ``python -m experiments params.Hyperparams`` does what
    ``experiment params.Hyperparams`` does, looking in that package's folder first.
    """
    working_directory_after_stdlib()
    module = sys.modules.get("__main__")
    source = getattr(module, "__file__", None)
    home = os.path.dirname(os.path.abspath(source)) if source else None
    spec = getattr(module, "__spec__", None)
    package = getattr(spec, "parent", "") if spec is not None else ""
    prog = f"python -m {package}" if package else "experiment"
    sys.exit(main(sys.argv[1:], prog=prog, home=home))


def working_directory_after_stdlib() -> None:
    """Move the working directory that ``python -m`` put first on sys.path after the
    standard library, where the ``experiment`` command puts it: a stray ``colorsys.py``
    there is then never imported in place of the standard library's."""
    if sys.path[:1] not in ([""], [os.getcwd()]):
        return
    from superparams._cli._find import after_stdlib

    entry = os.getcwd()
    del sys.path[0]
    if entry not in sys.path:
        sys.path.insert(after_stdlib(sys.path), entry)


def _error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _quiet_broken_pipe() -> None:
    # Point stdout at devnull so the interpreter's final flush does not complain.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _main(argv: list[str], prog: str, home: Path | None) -> None:
    if not argv:
        sys.stderr.write(usage(prog) + f"\nTry '{prog} --help' for more.\n")
        raise Exit(UsageError.exit_code)
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(general_help(prog))
        return
    if argv[0] == "--version":
        from superparams._version import __version__

        sys.stdout.write(f"superparams {__version__}\n")
        return
    words, before, after = split(argv)
    read(words, before, None)
    if words.target is None:
        if words.help:
            is_run = words.command == "run"
            sys.stdout.write(general_help(prog) if is_run else command_help(prog, words.command))
            return
        what = f"{prog} {words.command}" if words.command != "run" else prog
        msg = f"{what} needs an experiment, e.g. {what} params.Hyperparams"
        raise UsageError(msg)

    from superparams._cli._spaces import space_of

    found = _found(words, before, after, prog, home)
    read(words, after, fields_of(found))
    if words.help:
        sys.stdout.write(experiment_help(prog, found, words.command))
        return
    request = words.request()
    # clean works on the whole folder of each class: it needs no space
    spaces = [] if request.command == "clean" else [space_of(t, request) for t in found.targets]
    COMMANDS[request.command](found, spaces, request, prog)


def _found(
    words: Words, before: list[str], after: list[str], prog: str, home: Path | None
) -> Found:
    """The experiments the words name; a command word misplaced or misspelled is said so.

    Raises:
        UsageError: no experiment of that name, or a command word where one was expected.
    """
    from superparams._cli._find import find, find_recorded

    assert words.target is not None  # the caller has read a name
    if words.command in READS and not words.help:
        found = find_recorded(words.target, home)  # no import while the files are as run
        if found is not None:
            return found
    try:
        return find(words.target, home)
    except UsageError as error:
        if words.command == "run" and words.target in COMMAND_WORDS:
            what = f"{prog} {words.target}"
            msg = f"{what} needs an experiment, e.g. {what} params.Hyperparams"
            raise UsageError(msg) from None
        close = difflib.get_close_matches(words.target, COMMAND_WORDS, n=1)
        if words.command == "run" and not before and close:  # `experiment stauts X`
            rest = " ".join(after[:1]) or "EXPERIMENT"
            msg = (
                f"{words.target!r} is no command, nor an experiment here (did you mean "
                f"{close[0]!r}? {prog} {close[0]} {rest}); commands: {', '.join(COMMAND_WORDS)}"
            )
            raise UsageError(msg) from error
        raise
