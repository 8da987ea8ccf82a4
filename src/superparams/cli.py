"""The ``experiment`` command: find an experiment, turn flags into overrides, run it.

::

    experiment EXPERIMENT [--FIELD VALUE ...] [options]   run the settings not completed yet
    experiment status  EXPERIMENT [--FIELD VALUE ...]     what is done, failed, running, left
    experiment results EXPERIMENT [--sort COL] [--csv | --json | --parquet PATH]
    experiment logs    EXPERIMENT [--FIELD VALUE ...] [-f] [-n N]
    experiment clean   EXPERIMENT [--yes]

A command word is a command only when it comes first and an experiment follows it, so
``experiment params.Hyperparams ...`` always means run. This room parses, finds the
experiment (:mod:`superparams._find`), reads values by each field's annotation
(:mod:`superparams._values`) and calls the same API a notebook calls. :func:`main` is the
only place that prints an error and picks the exit code. polars and rich are imported
by the commands that need them, never by ``experiment --help``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from superparams.errors import SuperparamsError, UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from superparams._find import Found
    from superparams.events import Event, RunFinished
    from superparams.experiment import Experiment
    from superparams.space import Space
    from superparams.store import Plan, Store

COMMANDS = ("status", "results", "logs", "clean")
INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "experiment",
    home: str | Path | None = None,
    standalone: bool = True,
) -> int:
    """Run the ``experiment`` command; return its exit code.

    0 when every setting completed, 1 when any failed, 2 for a usage error, 130 when
    interrupted.

    Args:
        argv: the words after the command (default: ``sys.argv[1:]``).
        prog: the command's name in help and usage lines.
        home: a folder to look for experiments in before the working directory.
        standalone: turn errors into a message and an exit code; False re-raises them.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not standalone:
        return _main(args, prog, Path(home) if home else None)
    try:
        return _main(args, prog, Path(home) if home else None)
    except SuperparamsError as error:
        _error(str(error))
        return error.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return INTERRUPTED
    except BrokenPipeError:  # `experiment results X | head`: the reader left, fine
        _quiet_broken_pipe()
        return 0
    except RuntimeError as error:
        from superparams.worker import WorkerError

        if isinstance(error, WorkerError):
            _error(str(error))
            return 1
        raise


def entrypoint() -> None:
    """Run the ``experiment`` command from a package's ``__main__.py``.

    With ``experiments/__main__.py`` holding ``from superparams import entrypoint`` and
    ``entrypoint()``, ``python -m experiments params.Hyperparams`` does what
    ``experiment params.Hyperparams`` does, looking in that package's folder first.
    """
    module = sys.modules.get("__main__")
    source = getattr(module, "__file__", None)
    home = os.path.dirname(os.path.abspath(source)) if source else None
    spec = getattr(module, "__spec__", None)
    package = getattr(spec, "parent", "") if spec is not None else ""
    prog = f"python -m {package}" if package else "experiment"
    sys.exit(main(sys.argv[1:], prog=prog, home=home))


def _error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def _quiet_broken_pipe() -> None:
    # Point stdout at devnull so the interpreter's final flush does not complain.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


# -- options ---------------------------------------------------------------------------------


def _int(flag: str, text: str, low: int | None = None) -> int:
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or (low is not None and number < low):
        at_least = f" of at least {low}" if low is not None else ""
        msg = f"{flag} expects a whole number{at_least}, got {text!r}"
        raise UsageError(msg)
    return number


def _seconds(flag: str, text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        msg = f"{flag} expects a duration such as 90, 90s, 30m or 2h, got {text!r}"
        raise UsageError(msg)
    return seconds


def _ids(flag: str, text: str) -> list[int | str]:
    ids: list[int | str] = [int(p) if p.isdigit() else p for p in text.split(",") if p.strip()]
    if not ids:
        msg = f"{flag} expects device ids such as 0,1, got {text!r}"
        raise UsageError(msg)
    return ids


def _engine(flag: str, text: str) -> str:
    from superparams.executors import engines

    if text not in engines():
        msg = f"{flag}: no engine {text!r}{did_you_mean(text, engines())}; engines: "
        raise UsageError(msg + ", ".join(engines()))
    return text


@dataclass(frozen=True)
class _Option:
    names: tuple[str, ...]
    dest: str
    help: str
    commands: tuple[str, ...]
    metavar: str = ""  # "" for a flag that takes no value
    read: Callable[[str, str], Any] | None = None


_RUN, _SAMPLED = ("run",), ("run", "status", "results", "logs")
OPTIONS = (
    _Option(
        ("-j", "--num_proc", "--num-proc", "--n_proc", "--n-proc"),  # --n_proc: as 0.1.0
        "num_proc",
        "worker processes (default 1, or one per --gpus id)",
        _RUN,
        "N",
        lambda flag, text: _int(flag, text, 1),
    ),
    _Option(
        ("--gpus",),
        "gpus",
        "GPU ids for the workers (CUDA_VISIBLE_DEVICES), e.g. 0,1",
        _RUN,
        "IDS",
        _ids,
    ),
    _Option(
        ("--rerun-failed", "--rerun_failed"),
        "rerun_failed",
        "run only the settings that failed before",
        _RUN,
    ),
    _Option(("--fresh",), "fresh", "run every setting again, ignoring earlier results", _RUN),
    _Option(
        ("--dry-run", "--dry_run"),
        "dry_run",
        "show what would run (new, done, failed); run nothing",
        _RUN,
    ),
    _Option(
        ("--debug",),
        "debug",
        "run here, one by one; open pdb at the first failure",
        _RUN,
    ),
    _Option(
        ("--timeout",),
        "timeout",
        "fail a setting running longer (90, 90s, 30m, 2h)",
        _RUN,
        "TIME",
        _seconds,
    ),
    _Option(
        ("--retries",),
        "retries",
        "try a failed setting up to N more times",
        _RUN,
        "N",
        lambda flag, text: _int(flag, text, 0),
    ),
    _Option(
        ("--engine",),
        "engine",
        "where settings run: local (default) or inline",
        _RUN,
        "NAME",
        _engine,
    ),
    _Option(
        ("--sample",),
        "sample",
        "only N settings, drawn at random (for distributions)",
        _SAMPLED,
        "N",
        lambda flag, text: _int(flag, text, 1),
    ),
    _Option(
        ("--seed",),
        "seed",
        "the seed --sample draws with (default 0)",
        _SAMPLED,
        "S",
        lambda flag, text: _int(flag, text),
    ),
    _Option(("-q", "--quiet"), "quiet", "print only the summary at the end", _RUN),
    _Option(("-y", "--yes"), "yes", "do not ask: resume (run), delete (clean)", ("run", "clean")),
    _Option(
        ("--sort",),
        "sort",
        "sort by a column (-COLUMN or --desc: largest first)",
        ("results",),
        "COLUMN",
        lambda flag, text: text,
    ),
    _Option(("--desc",), "desc", "sort largest first", ("results",)),
    _Option(("--csv",), "csv", "write the table as CSV to stdout", ("results",)),
    _Option(("--json",), "json", "write the table as JSON to stdout", ("results",)),
    _Option(
        ("--parquet",),
        "parquet",
        "write the table to a parquet file",
        ("results",),
        "PATH",
        lambda flag, text: text,
    ),
    _Option(("-f", "--follow"), "follow", "keep printing the logs of running settings", ("logs",)),
    _Option(
        ("-n", "--lines"),
        "lines",
        "only the last N lines of each log",
        ("logs",),
        "N",
        lambda flag, text: _int(flag, text, 0),
    ),
)
_BY_NAME = {name: option for option in OPTIONS for name in option.names}


@dataclass
class _Request:
    """What the words of a command asked for."""

    command: str = "run"
    target: str | None = None
    help: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # field name -> (the flag as written, its text; None for a bare boolean flag)
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def get(self, dest: str, default: Any = None) -> Any:
        return self.options.get(dest, default)


@dataclass(frozen=True)
class _Fields:
    """The fields flags may set: their names, and which take true or false."""

    owner: str
    names: tuple[str, ...]
    flags: frozenset[str]  # bool fields: `--flag` alone means true
    derived: frozenset[str]


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _is_number(token)


def _split(argv: list[str]) -> tuple[_Request, list[str], list[str]]:
    """The command, and the words before and after the experiment's name."""
    request = _Request()
    words = argv
    if (
        len(argv) >= 2
        and argv[0] in COMMANDS
        and (not _is_option(argv[1]) or argv[1] in ("-h", "--help"))
    ):
        request.command, words = argv[0], argv[1:]
    i = 0
    while i < len(words):
        word = words[i]
        if not _is_option(word):
            request.target = word
            return request, words[:i], words[i + 1 :]
        option = _BY_NAME.get(word)
        i += 2 if option is not None and option.metavar and "=" not in word else 1
    return request, words, []


def _read(request: _Request, words: list[str], fields: _Fields | None) -> None:
    """Read options and field values into ``request``; before the name, no fields yet."""
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("-h", "--help"):
            request.help = True
            continue
        if not _is_option(word):
            where = f"after {request.target!r}" if fields is not None else "here"
            msg = f"unexpected {word!r} {where}; field values are written --FIELD VALUE"
            raise UsageError(msg)
        flag, eq, inline = word.partition("=")
        if not flag.startswith("--") and len(flag) > 2:  # -j4, -n20
            flag, inline, eq = flag[:2], flag[2:], "="
        value = inline if eq else None
        name = flag[2:] if flag.startswith("--") else ""
        if fields is not None and name:
            target = _field_named(name, fields)
            if target is not None:
                if value is None and target in fields.flags:
                    # `--flag` alone is true; a word after it is its value, bool or not
                    nxt = words[i] if i < len(words) else ""
                    if nxt and not _is_option(nxt):
                        value, i = nxt, i + 1
                elif value is None:
                    value, i = _value_after(flag, words, i)
                request.overrides[target] = (flag, value)
                continue
            negated = _field_named(name[3:], fields) if name.startswith("no") else None
            if negated is not None and negated in fields.flags and value is None:
                request.overrides[negated] = (flag, "false")
                continue
        option = _BY_NAME.get(flag)
        if option is None or request.command not in option.commands:
            raise UsageError(_unknown_option(flag, request, fields, option))
        if option.metavar:
            if value is None:
                value, i = _value_after(flag, words, i)
            assert option.read is not None
            request.options[option.dest] = option.read(flag, value)
        elif eq:
            msg = f"{flag} takes no value, got {word!r}"
            raise UsageError(msg)
        else:
            request.options[option.dest] = True


def _value_after(flag: str, words: list[str], i: int) -> tuple[str, int]:
    if i >= len(words) or words[i].startswith("--"):
        msg = f"{flag} needs a value"
        raise UsageError(msg)
    return words[i], i + 1


def _field_named(name: str, fields: _Fields) -> str | None:
    if name in fields.names:
        return name
    underscored = name.replace("-", "_")
    return underscored if underscored in fields.names else None


def _unknown_option(
    flag: str, request: _Request, fields: _Fields | None, option: _Option | None
) -> str:
    if option is not None:
        where = "a run" if option.commands == _RUN else "/".join(option.commands)
        return f"{flag} is an option of {where}, not of {_command_name(request)}"
    name = flag.lstrip("-")
    if fields is None:
        return (
            f"unknown option {flag}; field values go after the experiment's name: "
            f"experiment EXPERIMENT {flag} VALUE"
        )
    listed = f"; its fields are {', '.join(fields.names)}" if fields.names else "; no fields"
    hint = did_you_mean(name, fields.names)
    if not hint:
        options = [n for o in OPTIONS if request.command in o.commands for n in o.names]
        close = did_you_mean(flag, [n for n in options if n.startswith("--")])
        if close:
            return f"{flag} is not an option, nor a field of {fields.owner}{close}{listed}"
    return f"{flag}: {fields.owner} has no field {name!r}{hint}{listed}"


def _command_name(request: _Request) -> str:
    return "a run" if request.command == "run" else f"`experiment {request.command}`"


# -- from the words to spaces ------------------------------------------------------------------


def _main(argv: list[str], prog: str, home: Path | None) -> int:
    if not argv:
        sys.stderr.write(_usage(prog) + f"\nTry '{prog} --help' for more.\n")
        return UsageError.exit_code
    if argv[0] in ("-h", "--help"):
        sys.stdout.write(general_help(prog))
        return 0
    if argv[0] == "--version":
        from superparams._version import __version__

        sys.stdout.write(f"superparams {__version__}\n")
        return 0
    request, before, after = _split(argv)
    _read(request, before, None)
    if request.target is None:
        if request.help:
            sys.stdout.write(
                general_help(prog)
                if request.command == "run"
                else _command_help(prog, request.command)
            )
            return 0
        what = f"{prog} {request.command}" if request.command != "run" else prog
        msg = f"{what} needs an experiment, e.g. {what} params.Hyperparams"
        raise UsageError(msg)

    from superparams._find import find

    try:
        found = find(request.target, home)
    except UsageError:
        if request.command == "run" and request.target in COMMANDS:
            what = f"{prog} {request.target}"
            msg = f"{what} needs an experiment, e.g. {what} params.Hyperparams"
            raise UsageError(msg) from None
        raise
    fields = _fields_of(found)
    _read(request, after, fields)
    if request.help:
        sys.stdout.write(experiment_help(prog, found, request.command))
        return 0
    _check_combinations(request)
    # clean works on the whole folder of each class: it needs no space
    spaces = [] if request.command == "clean" else [_space(c, request) for c in found.classes]
    command = {
        "run": _run,
        "status": _status,
        "results": _results,
        "logs": _logs,
        "clean": _clean,
    }[request.command]
    return command(found, spaces, request, prog)


def _fields_of(found: Found) -> _Fields:
    from superparams._values import is_bool

    names: dict[str, None] = {}
    flags: set[str] = set()
    derived: set[str] = set()
    for cls in found.classes:
        info = cls._sp_info()
        names.update(dict.fromkeys(info.fields))
        derived.update(n for n, _ in info.derived)
        flags.update(n for n in info.fields if is_bool(info.annotations.get(n)))
    if len(found.classes) == 1:
        owner = found.classes[0].__name__
    else:
        owner = "no experiment in " + _shown(found.path)
    names.update(dict.fromkeys(sorted(derived)))
    return _Fields(owner, tuple(names), frozenset(flags), frozenset(derived))


def _check_combinations(request: _Request) -> None:
    if request.get("fresh") and request.get("rerun_failed"):
        msg = "--fresh runs every setting again and --rerun-failed only the failed ones; pick one"
        raise UsageError(msg)
    exports = [f"--{n}" for n in ("csv", "json", "parquet") if request.get(n)]
    if len(exports) > 1:
        msg = f"{' and '.join(exports)} both write the table; pick one"
        raise UsageError(msg)
    if request.command == "clean" and request.overrides:
        flags = " ".join(flag for flag, _ in request.overrides.values())
        msg = (
            "clean removes every stored result of the experiment, not those of some "
            f"settings; drop {flags}"
        )
        raise UsageError(msg)


def _space(cls: type[Experiment], request: _Request) -> Space[Any]:
    """The space a class spans with the request's field values."""
    from superparams.errors import SearchSpaceError

    info = cls._sp_info()
    derived = {n for n, _ in info.derived}
    values: dict[str, Any] = {}
    for name, (flag, text) in request.overrides.items():
        if name in derived:
            msg = (
                f"{flag}: {cls.__name__}.{name} is derived from the other fields; it cannot be set"
            )
            raise UsageError(msg)
        if name in info.annotations:
            values[name] = _field_value(flag, text, info.annotations.get(name))
    missing = [n for n in info.fields if n not in info.defaults and n not in values]
    if missing:
        flags = ", ".join(f"--{n}" for n in missing)
        why = "they have no default" if len(missing) > 1 else "it has no default"
        msg = f"{cls.__name__} needs {flags}: {why}"
        raise UsageError(msg)
    space: Space[Any] = cls(**values)
    sample = request.get("sample")
    if sample is not None:
        space = space.sample(sample, request.get("seed", 0))
    elif request.get("seed") is not None:
        msg = "--seed is the seed of --sample; add --sample N"
        raise UsageError(msg)
    if not space.enumerable:
        drawn = [n for n in info.fields if _is_distribution(space, n)]
        msg = (
            f"{cls.__name__} draws {', '.join(drawn) or 'a field'} from a distribution, so its "
            "settings cannot be listed; run a sample of them: --sample N [--seed S]"
        )
        raise UsageError(msg)
    try:
        len(space)
    except SearchSpaceError as error:
        raise UsageError(str(error)) from None
    return space


def _is_distribution(space: Any, name: str) -> bool:
    from superparams.space import Distribution

    return isinstance(space.__dict__.get(name), Distribution)


def _field_value(flag: str, text: str | None, annotation: Any) -> Any:
    """A field's value from its text: one value, or a search over several."""
    from superparams._values import BadValue, Unsettable, expected, parse, split
    from superparams.space import search

    if text is None:
        return True
    items = split(text)
    values = []
    for item in items:
        try:
            values.append(parse(item, annotation))
        except BadValue as error:
            within = f" (in {text!r})" if len(items) > 1 else ""
            msg = f"{flag} expects {expected(annotation)}, got {item!r}{within}{error.hint}"
            raise UsageError(msg) from None
        except Unsettable as error:
            msg = f"{flag} cannot be set from the command line: {error}"
            raise UsageError(msg) from None
    return values[0] if len(values) == 1 else search(*values)


# -- run -----------------------------------------------------------------------------------------


def _run(found: Found, spaces: list[Space[Any]], request: _Request, prog: str) -> int:
    codes = []
    for number, space in enumerate(spaces):
        if number and not request.get("quiet"):
            _say("")  # a blank line between the experiments of one file
        code = _run_one(found, space, request, prog)
        codes.append(code)
        if code == INTERRUPTED:
            break
    return INTERRUPTED if INTERRUPTED in codes else max(codes)


def _run_one(found: Found, space: Space[Any], request: _Request, prog: str) -> int:
    from superparams.runner import run_all

    cls = space.experiment_class
    store = _store(space)
    quiet, dry_run = bool(request.get("quiet")), bool(request.get("dry_run"))
    fresh, only_failed = bool(request.get("fresh")), bool(request.get("rerun_failed"))
    if not dry_run:
        _check_unlocked(store)
    stored = _plan(space, store)
    earlier = len(stored.done) + len(stored.failed) + len(stored.interrupted)
    if not quiet or dry_run:
        _say(_overview(found, space, store, stored.summary() if earlier or stored.stale else ""))
    if dry_run:
        _say(_plan_text(space, stored, fresh=fresh, only_failed=only_failed))
        return 0
    to_run = _to_run(stored, fresh=fresh, only_failed=only_failed)
    if not to_run:
        if only_failed:
            _say(f"{cls.__name__}: no failed settings to run again")
        else:
            _say(
                f"{cls.__name__}: all {len(stored.done)} settings completed before; nothing to "
                "run (--fresh runs them again)"
            )
        if not quiet:
            _print_results(space, _results_of(space), limit=20, prog=prog, found=found)
        return 0
    if earlier and not fresh and not only_failed:
        if _interactive() and not request.get("yes"):
            answer = _ask_resume(stored, to_run)
            if answer == "quit":
                _say("nothing run")
                return 0
            fresh = answer == "fresh"
        elif not quiet:
            _say(f"resuming: {_resume_text(stored, to_run)}")

    gpus = request.get("gpus")
    num_proc = request.get("num_proc") or (len(gpus) if gpus else 1)
    debug = bool(request.get("debug"))
    if debug and num_proc > 1:
        _say("--debug runs settings one by one in this process; -j is ignored")
    if not quiet:
        where = "in this process" if debug else f"on {num_proc} worker process"
        where += "es" if not debug and num_proc > 1 else ""
        _say(f"running {to_run} setting{'s' if to_run != 1 else ''} {where}")
    display = _display(quiet=quiet, debug=debug)
    ended: list[RunFinished] = []
    frame: pl.DataFrame | None = None
    try:
        frame = run_all(
            space,
            num_proc=num_proc,
            gpus=gpus,
            only_failed=only_failed,
            fresh=fresh,
            timeout=request.get("timeout"),
            retries=request.get("retries", 0),
            engine=request.get("engine") or "local",
            debug=debug,
            display=display,
            subscribers=[_collect(ended)],
        )
    except KeyboardInterrupt:
        pass
    except Exception as error:
        if not debug or isinstance(error, SuperparamsError):
            raise
        return _post_mortem(error)
    finally:
        close = getattr(display, "close", None)
        if callable(close):
            close()
    finish = ended[-1] if ended else None
    if finish is None:  # stopped before the run began
        return INTERRUPTED
    if not quiet:
        _print_results(space, frame if frame is not None else _results_of(space), 20, prog, found)
    _report_end(finish)
    if finish.interrupted:
        return INTERRUPTED
    return 1 if finish.failed else 0


def _store(space: Space[Any]) -> Store:
    from superparams.store import Store

    return Store.for_space(space)


def _plan(space: Space[Any], store: Store) -> Plan:
    """What is stored for each setting; with nothing stored, without loading polars."""
    from superparams.store import Plan

    if store.folder.exists():
        return store.plan(space)
    ids = list(space._sp_ids())
    first: dict[str, int] = {}
    for position, sid in enumerate(ids):
        first.setdefault(sid, position)
    return Plan(new=list(first.values()), ids=ids)


def _check_unlocked(store: Store) -> None:
    from superparams.errors import StoreLockedError

    if store.is_locked():
        try:
            holder = (store.folder / "lock").read_text().strip() or "another process"
        except OSError:
            holder = "another process"
        msg = (
            f"another run is writing to {_shown(store.folder)} ({holder}); wait for it to "
            "finish or stop it, then run again"
        )
        raise StoreLockedError(msg)


def _to_run(stored: Any, *, fresh: bool, only_failed: bool) -> int:
    if fresh:
        return len(set(stored.ids))
    if only_failed:
        return len(stored.failed)
    return len(stored.new) + len(stored.failed) + len(stored.interrupted)


def _resume_text(stored: Any, to_run: int) -> str:
    parts = [
        f"{len(v)} {k}"
        for k, v in (
            ("failed", stored.failed),
            ("interrupted", stored.interrupted),
            ("new", stored.new),
        )
        if v
    ]
    kept = f"{len(stored.done)} completed before are kept; " if stored.done else ""
    return f"{kept}running {to_run} ({', '.join(parts)})"


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _ask(question: str) -> str | None:
    """A line typed in answer (lowercased), or None at end of input."""
    sys.stderr.write(question)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
        return None
    return line.strip().lower()


def _ask_resume(stored: Any, to_run: int) -> str:
    kept = f"skip the {len(stored.done)} completed, " if stored.done else ""
    question = f"Resume ({kept}run {to_run})? [Y]es, [f]resh: run all again, [n]o: quit "
    while True:
        answer = _ask(question)
        if answer is None or answer in ("n", "no", "q", "quit"):
            return "quit"
        if answer in ("", "y", "yes"):
            return "resume"
        if answer in ("f", "fresh"):
            return "fresh"
        sys.stderr.write("please answer y, f or n\n")


def _display(*, quiet: bool, debug: bool) -> Callable[[Event], None]:
    from superparams.display import PlainDisplay

    if quiet:
        return PlainDisplay(quiet=True, header=False, summary=False)
    if debug or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return PlainDisplay(header=False, summary=False)
    from superparams.display import LiveDisplay

    return LiveDisplay(summary=False)


def _collect(ended: list[RunFinished]) -> Callable[[Event], None]:
    from superparams.events import RunFinished

    def collect(event: Event) -> None:
        if isinstance(event, RunFinished):
            ended.append(event)

    return collect


def _post_mortem(error: BaseException) -> int:
    """Show the traceback of a failure in --debug, and open pdb on it in a terminal."""
    import bdb
    import traceback

    if isinstance(error, bdb.BdbQuit):  # quit from a breakpoint() in run()
        return 1
    traceback.print_exception(error)
    if not sys.stdin.isatty():
        _say("(no terminal: not opening the debugger)")
        return 1
    import pdb

    _say("opening the debugger (pdb) where it failed; 'q' quits")
    pdb.post_mortem(error.__traceback__)
    return 1


def _report_end(finish: RunFinished) -> None:
    from superparams.display import short_path, summary

    for failed in finish.failures:
        _say(f"failed: {failed.label}: {failed.failure.error}")
        if failed.log:
            _say(f"  log: {short_path(failed.log)}")
    _say(summary(finish))
    if finish.interrupted:
        _say("run the same command again to resume")
    _say(f"results: {short_path(finish.results)}")


# -- what is shown before ------------------------------------------------------------------


def _overview(found: Found, space: Space[Any], store: Store, earlier: str) -> str:
    lines = _fields_overview(space)
    lines[0] += f"  ({_shown(found.path)})"
    lines.append(f"stored:  {earlier or 'nothing yet'}")
    lines.append(f"results: {_shown(store.results_path)}")
    lines.append(f"logs:    {_shown(store.folder / 'logs')}{os.sep}")
    return "\n".join(lines)


def _fields_overview(space: Space[Any]) -> list[str]:
    """The experiment's name and size, then a line per field: type, value or values."""
    from superparams._values import type_name
    from superparams.experiment import Experiment
    from superparams.space import Dimension, Grid, Space

    n = len(space)
    head = f"{space.experiment_class.__name__}: {n:,} setting{'s' if n != 1 else ''}"
    if not isinstance(space, Experiment):  # a sample or a union: it describes itself
        return [head, *str(space).splitlines()]
    info = type(space)._sp_info()
    rows = []
    for name in (*info.fields, *(n for n, _ in info.derived)):
        value = space.__dict__.get(name)
        if isinstance(value, Grid) and not value.expands():
            shown = ", ".join(_brief(p) for p in value.points)
            count = f"{len(value.points)} values" if len(value.points) > 1 else ""
        elif isinstance(value, (Dimension, Space)):
            shown, count = _brief(value, 60), "searched"
        else:
            shown, count = _brief(value, 60), ""
        rows.append((name, type_name(info.annotations.get(name)), shown, count))
    widths = [max((len(r[k]) for r in rows), default=0) for k in range(3)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
        lines_row = f"  {'  '.join(cells)}  {row[3]}".rstrip()
        head += "\n" + lines_row
    return head.split("\n")


def _brief(value: Any, width: int = 24) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plan_text(space: Space[Any], stored: Any, *, fresh: bool, only_failed: bool) -> str:
    runs = _to_run(stored, fresh=fresh, only_failed=only_failed)
    lines = [f"would run {runs} setting{'s' if runs != 1 else ''} (dry run: nothing is run)"]
    groups = [
        ("new", stored.new, not only_failed),
        ("failed", stored.failed, True),
        ("interrupted", stored.interrupted, not only_failed),
        ("done", stored.done, fresh),
    ]
    for status, positions, runs_it in groups:
        for position in positions[:20]:
            mark = "run " if runs_it else "keep"
            lines.append(f"  {mark}  {status:<11}  {space[position].label}")
        if len(positions) > 20:
            lines.append(f"  ...   {len(positions) - 20} more {status}")
    if stored.stale:
        lines.append(
            f"  {len(stored.stale)} stored setting{'s' if len(stored.stale) != 1 else ''} "
            "no longer in this space (kept, not run)"
        )
    return "\n".join(lines)


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _shown(path: Path | str) -> str:
    from superparams._find import shown

    return shown(path)


# -- tables ----------------------------------------------------------------------------------


def _results_of(space: Space[Any]) -> pl.DataFrame:
    from superparams.runner import results

    return results(space)


def _columns(frame: pl.DataFrame, cls: type[Experiment]) -> list[str]:
    """The columns worth a look: parameters that vary, results, and status if mixed."""
    from superparams.store import BOOKKEEPING

    info = cls._sp_info()
    params = set(info.fields) | {n for n, _ in info.derived}

    def is_param(column: str) -> bool:
        return column in params or column.split(".", 1)[0] in params

    varying = [c for c in frame.columns if is_param(c) and _n_unique(frame[c]) > 1]
    results = [
        c
        for c in frame.columns
        if not is_param(c) and c not in ("id", "label") and c not in BOOKKEEPING
    ]
    extra = []
    if "status" in frame.columns and set(frame["status"].to_list()) != {"completed"}:
        extra.append("status")
    if "seconds" in frame.columns:
        extra.append("seconds")
    return varying + results + extra


def _n_unique(series: Any) -> int:
    try:
        return int(series.n_unique())
    except Exception:  # a column polars cannot hash: compare the texts
        return len({repr(v) for v in series.to_list()})


def _cell(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column == "seconds" and isinstance(value, (int, float)):
        from superparams.display import duration

        return duration(float(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_results(
    space: Space[Any],
    frame: pl.DataFrame,
    limit: int | None,
    prog: str,
    found: Found,
    columns: list[str] | None = None,
) -> None:
    if frame.is_empty():
        return
    columns = columns or _columns(frame, space.experiment_class)
    if not columns:
        return
    rows = frame.select(columns).rows()
    more = 0
    if limit is not None and len(rows) > limit:
        rows, more = rows[:limit], len(rows) - limit
    headers = ["time" if c == "seconds" else c for c in columns]
    cells = [[_cell(v, c) for v, c in zip(row, columns, strict=True)] for row in rows]
    _table(headers, cells, sys.stdout)
    if more:
        _say(f"... {more} more rows: {prog} results {found.name}")


def _table(headers: list[str], rows: list[list[str]], stream: TextIO) -> None:
    """A table: rich in a terminal, plain aligned columns otherwise."""
    numeric = [all(_is_number(r[i]) or not r[i] for r in rows) for i in range(len(headers))]
    if stream.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        for header, is_numeric in zip(headers, numeric, strict=True):
            table.add_column(header, justify="right" if is_numeric else "left")
        for row in rows:
            table.add_row(*row)
        Console(file=stream, highlight=False).print(table)
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    stream.write(line(headers) + "\n")
    stream.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        stream.write(line(row) + "\n")
    stream.flush()


# -- status, results, logs, clean -------------------------------------------------------------


def _status(found: Found, spaces: list[Space[Any]], request: _Request, prog: str) -> int:
    for space in spaces:
        _status_one(found, space, request, prog)
    return 0


def _status_one(found: Found, space: Space[Any], request: _Request, prog: str) -> None:
    store = _store(space)
    stored = _plan(space, store)
    running: set[str] = set()
    errors: dict[str, str] = {}
    locked = store.is_locked()
    if store.folder.exists():
        table = store.table()
        if "status" in table.columns:
            first = table.unique(subset="id", keep="first", maintain_order=True)
            statuses = first["status"].to_list()
            ids = first["id"].to_list()
            running = {i for i, s in zip(ids, statuses, strict=True) if s == "running"}
            if "error" in first.columns:
                errors = {
                    i: e
                    for i, e in zip(ids, first["error"].to_list(), strict=True)
                    if e is not None
                }
    interrupted = [p for p in stored.interrupted if stored.ids[p] not in running]
    now = [p for p in stored.interrupted if stored.ids[p] in running]
    cls = space.experiment_class
    out = sys.stdout
    total = len(set(stored.ids))
    out.write(
        f"{cls.__name__} ({_shown(found.path)}): {total} setting{'s' if total != 1 else ''}\n"
    )
    counts = [
        ("completed", len(stored.done)),
        ("failed", len(stored.failed)),
        ("running", len(now)),
        ("interrupted", len(interrupted)),
        ("new", len(stored.new)),
    ]
    for name, count in counts:
        if count or name in ("completed", "failed", "new"):
            out.write(f"  {name:<12} {count}\n")
    if stored.stale:
        out.write(f"  {'gone':<12} {len(stored.stale)} stored but no longer in this space\n")
    if locked:
        try:
            holder = (store.folder / "lock").read_text().strip()
        except OSError:
            holder = ""
        out.write(f"a run is in progress ({holder})\n" if holder else "a run is in progress\n")
    left = stored.failed + interrupted + stored.new
    if left:
        out.write(f"left to run: {len(left)} (`{prog} {found.name}` runs them)\n")
        shown_left = sorted(left)[:20]
        for position in shown_left:
            sid = stored.ids[position]
            status = (
                "failed"
                if position in stored.failed
                else "interrupted"
                if position in interrupted
                else "new"
            )
            error = f"  {errors[sid]}" if status == "failed" and sid in errors else ""
            out.write(f"  {status:<12} {space[position].label}{error}\n")
        if len(left) > len(shown_left):
            out.write(f"  ... {len(left) - len(shown_left)} more\n")
    else:
        out.write("nothing left to run\n")
    out.write(f"results: {_shown(store.results_path)}\n")
    out.flush()


def _results(found: Found, spaces: list[Space[Any]], request: _Request, prog: str) -> int:
    if len(spaces) > 1 and (request.get("csv") or request.get("json") or request.get("parquet")):
        names = ", ".join(s.experiment_class.__name__ for s in spaces)
        msg = f"{found.name} holds several experiments ({names}); export one: {found.name}.CLASS"
        raise UsageError(msg)
    for space in spaces:
        _results_one(found, space, request, prog, several=len(spaces) > 1)
    return 0


def _results_one(
    found: Found, space: Space[Any], request: _Request, prog: str, *, several: bool
) -> None:
    frame = _results_of(space)
    cls = space.experiment_class
    sort = request.get("sort")
    if sort:
        descending = bool(request.get("desc")) or sort.startswith("-")
        column = sort.removeprefix("-") if sort not in frame.columns else sort
        if column not in frame.columns:
            msg = (
                f"--sort: no column {column!r}{did_you_mean(column, frame.columns)}; "
                f"columns: {', '.join(frame.columns)}"
            )
            raise UsageError(msg)
        frame = frame.sort(column, descending=descending, nulls_last=True, maintain_order=True)
    if request.get("parquet"):
        path = Path(request.get("parquet"))
        frame.write_parquet(path)
        _say(f"wrote {frame.height} rows to {_shown(path)}")
        return
    if request.get("csv"):
        sys.stdout.write(_flat(frame).write_csv())
        return
    if request.get("json"):
        sys.stdout.write(frame.write_json() + "\n")
        return
    if several:
        sys.stdout.write(f"{cls.__name__}:\n")
    if frame.is_empty():
        _say(f"no results stored for {cls.__name__} yet (`{prog} {found.name}` runs it)")
        return
    columns = _columns(frame, cls)
    if sort and column not in columns:
        columns = [column, *columns]
    _print_results(space, frame, None, prog, found, columns)


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """The table with nested columns (lists, structs) as JSON text, which CSV can hold."""
    import json

    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v) for v in frame[name].to_list()])
        for name in nested
    )


def _logs(found: Found, spaces: list[Space[Any]], request: _Request, prog: str) -> int:
    matches: list[_Log] = []
    total = 0
    for space in spaces:
        store = _store(space)
        known = _outcomes(store)
        for position, sid in enumerate(space._sp_ids()):
            total += 1
            path = Path(store.log_path(sid))
            if sid in known or path.exists():
                status, ended = known.get(sid, ("", None))
                matches.append(_Log(sid, space[position].label, path, store, status, ended))
    if not matches:
        what = f"the {total} matching setting{'s' if total != 1 else ''}"
        _say(f"no logs yet: none of {what} of {found.name} has run")
        return 1
    if request.get("follow"):
        running = [m for m in matches if m.running()]
        if running:
            return _follow(running, request.get("lines"))
        _say(f"none of the {len(matches)} matching settings is running; their logs:")
    for log in matches:
        if len(matches) > 1:
            sys.stdout.write(f"==> {log.label} [{log.status}] {_shown(log.path)} <==\n")
        if log.path.exists():
            sys.stdout.write(_tail(log.path, request.get("lines")))
        else:
            _say(f"({log.label} [{log.status}] wrote no output)")
    sys.stdout.flush()
    return 0


@dataclass
class _Log:
    """A setting's log, and the latest outcome stored for it when it was looked up."""

    id: str
    label: str
    path: Path
    store: Store
    status: str
    ended: float | None  # when that outcome ended (seconds since the epoch)

    def running(self) -> bool:
        """Whether a run is writing this log now.

        The record notes a start without flushing it, so a setting running now may
        still show its outcome from an earlier run: a log written to after that outcome
        ended belongs to a new attempt.
        """
        if self.status == "running":
            return True
        if not self.store.is_locked() or not self.path.exists():
            return False
        if self.ended is None:
            return self.status not in ("completed", "failed")
        return self.path.stat().st_mtime > self.ended + 1.0

    def finished(self) -> bool:
        """Whether, looking again, the run is over or this setting has a newer outcome."""
        if not self.store.is_locked():
            return True
        status, ended = _outcomes(self.store).get(self.id, ("", None))
        return status in ("completed", "failed") and (ended, status) != (self.ended, self.status)


def _outcomes(store: Store) -> dict[str, tuple[str, float | None]]:
    """The latest stored status of each setting, and when that outcome ended."""
    import datetime

    if not store.folder.exists():
        return {}
    table = store.table()
    if "status" not in table.columns or table.is_empty():
        return {}
    first = table.unique(subset="id", keep="first", maintain_order=True)
    starts = first["started"].to_list() if "started" in first.columns else [None] * first.height
    seconds = first["seconds"].to_list() if "seconds" in first.columns else [None] * first.height
    out: dict[str, tuple[str, float | None]] = {}
    for sid, status, start, took in zip(
        first["id"].to_list(), first["status"].to_list(), starts, seconds, strict=True
    ):
        ended = None
        if isinstance(start, datetime.datetime) and took is not None:
            ended = start.replace(tzinfo=datetime.timezone.utc).timestamp() + float(took)
        out[sid] = (status or "", ended)
    return out


def _tail(path: Path, lines: int | None) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    if lines is not None:
        text = "".join(text.splitlines(keepends=True)[-lines:]) if lines else ""
    return text if not text or text.endswith("\n") else text + "\n"


def _follow(running: list[_Log], lines: int | None) -> int:
    """Print the logs of running settings as they grow, until each one ends."""
    import time

    prefix = len(running) > 1
    offsets: dict[str, int] = {}
    for log in running:
        try:
            data = log.path.read_bytes()
        except OSError:
            data = b""
        offsets[log.id] = data.rfind(b"\n") + 1  # whole lines now, the rest as it completes
        text = data[: offsets[log.id]].decode("utf-8", errors="replace")
        if lines is not None:
            text = "".join(text.splitlines(keepends=True)[-lines:]) if lines else ""
        _write_log(text, log.label if prefix else "")
    checked = time.monotonic()
    active = running
    while active:
        time.sleep(0.2)
        for log in active:
            offsets[log.id] = _write_new(log.path, offsets[log.id], log.label if prefix else "")
        if time.monotonic() - checked >= 1.0:
            checked = time.monotonic()
            done = [log for log in active if log.finished()]
            for log in done:
                offsets[log.id] = _write_new(log.path, offsets[log.id], log.label if prefix else "")
            active = [log for log in active if log not in done]
    return 0


def _write_new(path: Path, offset: int, label: str) -> int:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return offset
    end = data.rfind(b"\n") + 1  # whole lines only; the rest comes with its newline
    if end:
        _write_log(data[:end].decode("utf-8", errors="replace"), label)
    return offset + end


def _write_log(text: str, label: str) -> None:
    if label:
        text = "".join(f"[{label}] {line}" for line in text.splitlines(keepends=True))
    sys.stdout.write(text)
    sys.stdout.flush()


def _clean(found: Found, spaces: list[Space[Any]], request: _Request, prog: str) -> int:
    from superparams.store import Store, folder_for

    for cls in found.classes:
        store = Store(folder_for(cls))
        if not store.folder.exists():
            _say(f"nothing stored for {cls.__name__} ({_shown(store.folder)} does not exist)")
            continue
        _check_unlocked(store)
        count = len(store.known())
        what = (
            f"{count} stored setting{'s' if count != 1 else ''} of {cls.__name__} and "
            f"their logs in {_shown(store.folder)}"
        )
        if not request.get("yes"):
            if not _interactive():
                msg = f"clean deletes {what}; with no terminal to confirm, add --yes"
                raise UsageError(msg)
            answer = _ask(f"Delete {what}? [y/N] ")
            if answer not in ("y", "yes"):
                _say("nothing deleted")
                continue
        store.clean()
        _say(f"deleted {what}")
    return 0


# -- help ------------------------------------------------------------------------------------


def _usage(prog: str) -> str:
    return (
        f"usage: {prog} EXPERIMENT [--FIELD VALUE ...] [options]\n"
        f"       {prog} {{status,results,logs,clean}} EXPERIMENT [...]"
    )


def _options_help(command: str) -> str:
    lines = []
    for option in OPTIONS:
        if command not in option.commands:
            continue
        names = ", ".join(_primary_names(option))
        if option.metavar:
            names += f" {option.metavar}"
        lines.append(f"  {names:<22} {option.help}")
    return "\n".join(lines)


def _primary_names(option: _Option) -> list[str]:
    """The spellings shown in help: the short one and the first long one."""
    short = [n for n in option.names if not n.startswith("--")]
    long = [n for n in option.names if n.startswith("--")][:1]
    return short + long


def general_help(prog: str) -> str:
    """What ``experiment --help`` prints."""
    return f"""{_usage(prog)}

Run every setting of an experiment that has not completed yet, each in a worker
process; results and logs go to progress/<file>/<Class>/ beside the experiment's file.

EXPERIMENT is looked up here, then in the folders just below (such as experiments/):
  params.Hyperparams       class Hyperparams in params.py
  RQ1                      every experiment in RQ1.py
  index.RQ1                class RQ1 in index.py, or every experiment in index/RQ1.py
  path/to/file.py:Class    a class in a file anywhere (path/to/file.py: all of them)

Fields: --FIELD VALUE sets a field; --FIELD a,b,c searches over a, b and c.
'{prog} EXPERIMENT --help' lists an experiment's fields, types and defaults.

commands:
  status EXPERIMENT        how many settings completed, failed, are running, are left
  results EXPERIMENT       the results table; --sort COLUMN, --csv, --json, --parquet PATH
  logs EXPERIMENT          the logs of the settings matching --FIELD VALUE; -f follows
  clean EXPERIMENT         delete the stored results and logs, after asking

run options:
{_options_help("run")}

exit status: 0 every setting completed, 1 some failed, 2 usage error, 130 interrupted
SUPERPARAMS_PROGRESS, if set, is the folder results go to instead of progress/.
"""


_COMMAND_SUMMARY = {
    "status": "how many settings completed, failed, are running, are left",
    "results": "the results table of the settings the experiment's fields select",
    "logs": "the logs of the settings matching the given field values",
    "clean": "delete every stored result and log of the experiment, after asking",
}


def _command_help(prog: str, command: str) -> str:
    fields = " [--FIELD VALUE ...]" if command != "clean" else ""
    return (
        f"usage: {prog} {command} EXPERIMENT{fields} [options]\n\n"
        f"{_COMMAND_SUMMARY[command][0].upper()}{_COMMAND_SUMMARY[command][1:]}.\n\n"
        f"options:\n{_options_help(command)}\n"
    )


def experiment_help(prog: str, found: Found, command: str = "run") -> str:
    """What ``experiment EXPERIMENT --help`` prints: the fields, then the options."""
    word = f"{command} " if command != "run" else ""
    lines = [f"usage: {prog} {word}{found.name} [--FIELD VALUE ...] [options]", ""]
    for cls in found.classes:
        info = cls._sp_info()
        doc = _doc(cls)
        lines.append(f"{cls.__name__} ({_shown(found.path)}){': ' + doc if doc else ''}")
        rows = []
        for name in info.fields:
            flag = f"--{name} {_metavar(info.annotations.get(name))}"
            rows.append((flag, _default_text(info, name)))
        for name, _ in info.derived:
            rows.append((f"{name}", "derived from the other fields"))
        width = max((len(r[0]) for r in rows), default=0)
        width = min(max(width, 22), 40)
        for flag, default in rows:
            lines.append(f"  {flag:<{width}} {default}".rstrip())
        lines.append("")
    lines.append("--FIELD VALUE sets a value; --FIELD a,b,c searches over a, b and c;")
    lines.append("lists go in brackets: --FIELD [1,2] (or [1,2],[3] to search).")
    lines.append("")
    title = "run options" if command == "run" else "options"
    lines.append(f"{title}:")
    lines.append(_options_help(command))
    return "\n".join(lines) + "\n"


def _metavar(annotation: Any) -> str:
    """How a field's value is shown in help: INT, PATH, {adam,sgd}, [BOOL]."""
    from superparams._values import is_bool, type_name

    if is_bool(annotation):
        return "[BOOL]"  # `--flag` alone means true
    name = type_name(annotation)
    return name if "{" in name else name.upper()


def _doc(cls: type) -> str:
    doc = (cls.__doc__ or "").strip()
    if not doc or doc.startswith(f"{cls.__name__}("):  # the signature dataclass writes
        return ""
    return doc.splitlines()[0]


def _default_text(info: Any, name: str) -> str:
    from superparams.space import Dimension, Grid, Space

    if name not in info.defaults:
        return "required"
    default = info.defaults[name]
    if isinstance(default, Grid) and not default.expands():
        if len(default.points) == 1:
            return f"default {_shown_value(default.points[0])}"
        return "search: " + ", ".join(_shown_value(p) for p in default.points)
    if isinstance(default, (Dimension, Space)):
        return f"search: {default!r}"
    return f"default {_shown_value(default)}"


def _shown_value(value: Any) -> str:
    """A value as it would be typed: enum members by name, paths as text."""
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Path):
        return str(value)
    return repr(value)
