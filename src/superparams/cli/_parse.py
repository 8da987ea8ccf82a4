"""The ``experiment`` command: find an experiment, turn flags into overrides, run it.

::

    experiment EXPERIMENT [--FIELD VALUE ...] [options]   run the settings not completed yet
    experiment status  EXPERIMENT [--FIELD VALUE ...]     what is done, failed, running, left
    experiment results EXPERIMENT [--sort COL] [--csv | --json | --parquet PATH]
    experiment logs    EXPERIMENT [--FIELD VALUE ...] [-f] [-n N]
    experiment clean   EXPERIMENT [--yes]

A command word is a command only when it comes first and an experiment follows it, so
``experiment params.Hyperparams ...`` always means run. This room reads the words, finds
the experiment (:mod:`superparams._find`), reads values by each field's annotation
(:mod:`superparams._values`), and hands the spaces to the command
(:mod:`superparams._commands`), which calls the same API a notebook calls. :func:`main`
is the only place that prints an error and picks the exit code. polars and rich are
imported by the commands that need them, never by ``experiment --help``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.errors import SuperparamsError, UsageError, did_you_mean

if TYPE_CHECKING:
    from superparams._find import Found
    from superparams.experiment import Experiment
    from superparams.space import Space

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

    0 when every setting completed, 1 when any failed, 2 for a usage error, 3 when the
    store could not be written or read, 4 when another run holds it, 5 when the
    experiment could not be loaded, 6 when an engine could not be reached, 130 when
    interrupted. Each error class carries its code (see :mod:`superparams.errors`).

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
            return error.exit_code
        raise


def entrypoint() -> None:
    """Run the ``experiment`` command from a package's ``__main__.py``.

    With ``experiments/__main__.py`` holding ``from superparams import entrypoint`` and
    ``entrypoint()``, ``python -m experiments params.Hyperparams`` does what
    ``experiment params.Hyperparams`` does, looking in that package's folder first.
    """
    _working_directory_after_stdlib()
    module = sys.modules.get("__main__")
    source = getattr(module, "__file__", None)
    home = os.path.dirname(os.path.abspath(source)) if source else None
    spec = getattr(module, "__spec__", None)
    package = getattr(spec, "parent", "") if spec is not None else ""
    prog = f"python -m {package}" if package else "experiment"
    sys.exit(main(sys.argv[1:], prog=prog, home=home))


def _working_directory_after_stdlib() -> None:
    """Move the working directory that ``python -m`` put first on sys.path after the
    standard library, where the ``experiment`` command puts it: a stray ``colorsys.py``
    there is then never imported in place of the standard library's."""
    if sys.path[:1] not in ([""], [os.getcwd()]):
        return
    from superparams._find import after_stdlib

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


def _num_proc(flag: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        msg = f"{flag} expects a whole number of worker processes (-1: one per core), got {text!r}"
        raise UsageError(msg) from None


def _seconds(flag: str, text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not seconds > 0:  # nan too
        msg = f"{flag} expects a duration such as 90, 90s, 30m or 2h, got {text!r}"
        raise UsageError(msg)
    if math.isinf(seconds):
        msg = (
            f"{flag} expects a finite duration such as 90, 30m or 2h, got {text!r}; "
            f"leave {flag} out for no limit"
        )
        raise UsageError(msg)
    return seconds


def _ids(flag: str, text: str) -> list[int | str]:
    """GPU ids as CUDA_VISIBLE_DEVICES takes them: indices from 0, or GPU and MIG UUIDs."""
    import re

    from superparams.executors import GPU_UUID

    ids: list[int | str] = []
    for part in text.split(","):
        item = part.strip()
        if item.isascii() and item.isdigit():
            ids.append(int(item))
        elif re.fullmatch(GPU_UUID, item):
            ids.append(item)
        else:
            within = f" (in {text!r})" if part != text else ""
            msg = (
                f"{flag} expects GPU ids separated by commas: indices from 0 (0,1) or "
                f"UUIDs (GPU-..., MIG-...), got {item!r}{within}"
            )
            raise UsageError(msg)
    return ids


def _key_values(flag: str, text: str) -> dict[str, str]:
    pairs = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"{flag} expects KEY=VALUE pairs separated by commas, got {item!r}"
            raise UsageError(msg)
        pairs[key.strip()] = value.strip()
    return pairs


def _engine(flag: str, text: str) -> str:
    from superparams.executors import engines, get_executor

    if text not in engines():
        msg = f"{flag}: no engine {text!r}{did_you_mean(text, engines())}; engines: "
        raise UsageError(msg + ", ".join(engines()))
    get_executor(text)  # its extra is missing: say what to install, before anything runs
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
        "worker processes (default 1, or one per --gpus id; -1: all cores)",
        _RUN,
        "N",
        _num_proc,
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
    _Option(
        ("--rerun-outdated", "--rerun_outdated"),
        "rerun_outdated",
        "also run the settings an earlier version of the code made",
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
        ("--isolate",),
        "isolate",
        "run each setting in a new worker process of its own",
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
        "where settings run: local (default), inline or dask",
        _RUN,
        "NAME",
        _engine,
    ),
    _Option(
        ("--engine-option", "--engine-options"),
        "engine_options",
        "the engine's own options, KEY=VALUE[,KEY=VALUE] (e.g. address=tcp://head:8786)",
        _RUN,
        "K=V",
        lambda flag, text: _key_values(flag, text),
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
        ("--sample-seed", "--sample_seed", "--seed"),  # --seed: as before, where no field is
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
    _Option(("--force",), "force", "let --parquet replace a file that exists", ("results",)),
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
class Request:
    """What the words of a command asked for."""

    command: str = "run"
    target: str | None = None
    help: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # field name -> (the flag as written, its text; None for a bare boolean flag)
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # option dest (or --field) -> the words that gave it, to name both if given twice
    given: dict[str, str] = field(default_factory=dict)

    def get(self, dest: str, default: Any = None) -> Any:
        return self.options.get(dest, default)


@dataclass(frozen=True)
class _Fields:
    """The fields flags may set: their names, and which take true or false."""

    owner: str
    names: tuple[str, ...]
    flags: frozenset[str]  # bool fields: `--flag` alone means true
    derived: frozenset[str]
    classes: tuple[type[Experiment], ...] = ()  # whose fields these are, for dotted names


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _is_number(token)


def _split(argv: list[str]) -> tuple[Request, list[str], list[str]]:
    """The command, and the words before and after the experiment's name."""
    request = Request()
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


def _read(request: Request, words: list[str], fields: _Fields | None) -> None:
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
            dotted_bool = False
            if target is None and "." in name:
                target, dotted_bool = _dotted(flag, name, fields)
            if target is not None:
                if value is None and (target in fields.flags or dotted_bool):
                    # `--flag` alone is true; a word after it is its value, bool or not
                    nxt = words[i] if i < len(words) else ""
                    if nxt and not _is_option(nxt):
                        value, i = nxt, i + 1
                elif value is None:
                    value, i = _value_after(flag, words, i)
                _override(request, target, flag, value, word if value is None else None)
                continue
            negated = _field_named(name[3:], fields) if name.startswith("no") else None
            if negated is not None and negated in fields.flags and value is None:
                _override(request, negated, flag, "false", word)
                continue
        option = _BY_NAME.get(flag)
        if option is None or request.command not in option.commands:
            raise UsageError(_unknown_option(flag, request, fields, option))
        if option.metavar:
            if value is None:
                value, i = _value_after(flag, words, i)
            assert option.read is not None
            _once(request, option.dest, f"{flag} {value}")
            request.options[option.dest] = option.read(flag, value)
        elif eq:
            msg = f"{flag} takes no value, got {word!r}"
            raise UsageError(msg)
        else:
            _once(request, option.dest, flag)
            request.options[option.dest] = True


def _override(request: Request, name: str, flag: str, value: str | None, bare: str | None) -> None:
    """Set a field's text, once: a second value would silently replace the first.

    ``bare`` is the flag as written when it stands alone (``--flag``, ``--no-flag``).
    """
    written = bare or f"{flag} {value}"
    key = f"--{name}"
    earlier = request.given.get(key)
    if earlier is not None:
        msg = f"--{name} is given twice ({earlier}, then {written}); give it once"
        before = request.overrides[name][1]
        if bare is None and " " in earlier:  # both with a value: a search holds both
            msg += f", or search over both: --{name} {before},{value}"
        raise UsageError(msg)
    request.given[key] = written
    request.overrides[name] = (flag, value)


def _once(request: Request, dest: str, written: str) -> None:
    """Refuse an option given twice, under any of its names (-j 2 --num_proc 3)."""
    earlier = request.given.get(dest)
    if earlier is not None:
        msg = f"{written.split()[0]} is given twice ({earlier}, then {written}); give it once"
        raise UsageError(msg)
    request.given[dest] = written


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


def _dotted(flag: str, name: str, fields: _Fields) -> tuple[str | None, bool]:
    """The field a dotted flag (``--model.width``) names in a nested experiment, and
    whether it takes true or false; None when the first name is no field at all.

    Raises:
        UsageError: the first name holds no experiment, or the nested one has no such field.
    """
    from superparams._values import expected, is_bool

    head, _, rest = name.partition(".")
    top = _field_named(head, fields)
    if top is None or not rest:
        return None, False
    owner = next(c for c in fields.classes if top in c._sp_info().fields)
    where, annotation = f"{owner.__name__}.{top}", owner._sp_info().annotations.get(top)
    path = [top]
    for part in rest.split("."):
        nested = _nested_class(annotation)
        if nested is None:
            msg = (
                f"{flag}: {where} is {expected(annotation)}, not a nested experiment; only a "
                "nested experiment's fields are set with a dot"
            )
            raise UsageError(msg)
        info = nested._sp_info()
        found = part if part in info.fields else part.replace("-", "_")
        if found not in info.fields:
            names = list(info.fields)
            msg = (
                f"{flag}: {nested.__name__} has no field {part!r}{did_you_mean(part, names)}; "
                f"its fields are {', '.join(names)}"
            )
            raise UsageError(msg)
        path.append(found)
        where, annotation = f"{nested.__name__}.{found}", info.annotations.get(found)
    return ".".join(path), is_bool(annotation)


def _nested_class(annotation: Any) -> type[Experiment] | None:
    """The experiment class a field holds, from its annotation (``Model``), or None."""
    if isinstance(annotation, type) and hasattr(annotation, "_sp_info"):
        return annotation
    return None


def _unknown_option(
    flag: str, request: Request, fields: _Fields | None, option: _Option | None
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
    several = fields.owner.startswith("no experiment in ")
    its = "their" if several else "its"
    listed = f"; {its} fields are {', '.join(fields.names)}" if fields.names else "; no fields"
    hint = did_you_mean(name, fields.names)
    if not hint:
        options = [n for o in OPTIONS if request.command in o.commands for n in o.names]
        close = did_you_mean(flag, [n for n in options if n.startswith("--")])
        if close:
            owner = f"any experiment in {fields.owner[17:]}" if several else fields.owner
            return f"{flag} is not an option, nor a field of {owner}{close}{listed}"
    if several:
        return f"{flag}: {fields.owner} has a field {name!r}{hint}{listed}"
    return f"{flag}: {fields.owner} has no field {name!r}{hint}{listed}"


def _shown(path: Path | str) -> str:
    from superparams._find import shown

    return shown(path)


def _command_name(request: Request) -> str:
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
    spaces = [] if request.command == "clean" else [_space(t, request) for t in found.targets]
    from superparams import _commands

    command = getattr(_commands, request.command)  # run, status, results, logs, clean
    result: int = command(found, spaces, request, prog)
    return result


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
        owner = "no experiment in " + _shown(found.path)  # "... has no field 'x'"
    names.update(dict.fromkeys(sorted(derived)))
    return _Fields(owner, tuple(names), frozenset(flags), frozenset(derived), found.classes)


def _check_combinations(request: Request) -> None:
    if request.get("engine_options"):
        from superparams.executors import get_executor

        get_executor(request.get("engine") or "local").read_options(request.get("engine_options"))
    if request.get("debug") and request.get("isolate"):
        msg = (
            "--debug runs settings in this process and --isolate each in a process of its "
            "own; pick one"
        )
        raise UsageError(msg)
    if request.get("fresh") and request.get("rerun_failed"):
        msg = "--fresh runs every setting again and --rerun-failed only the failed ones; pick one"
        raise UsageError(msg)
    if request.get("fresh") and request.get("rerun_outdated"):
        msg = "--fresh runs every setting again, outdated ones included; drop --rerun-outdated"
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


def _space(target: type[Experiment] | Space[Any], request: Request) -> Space[Any]:
    """The space a class (or a space the file defines) spans with the request's values."""
    from superparams.errors import ExperimentError, SearchSpaceError

    cls = target if isinstance(target, type) else target.experiment_class
    info = cls._sp_info()
    derived = {n for n, _ in info.derived}
    values: dict[str, Any] = {}
    nested: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, (flag, text) in request.overrides.items():
        head, dot, rest = name.partition(".")
        if head in derived:
            msg = (
                f"{flag}: {cls.__name__}.{head} is derived from the other fields; it cannot be set"
            )
            raise UsageError(msg)
        if dot and head in info.annotations:
            nested.setdefault(head, {})[rest] = (flag, text)
        elif name in info.annotations:
            values[name] = _field_value(flag, text, info.annotations.get(name))
    try:
        if isinstance(target, type):
            missing = [n for n in info.fields if n not in info.defaults and n not in values]
            if missing:
                flags = ", ".join(f"--{n}" for n in missing)
                why = "they have no default" if len(missing) > 1 else "it has no default"
                msg = f"{cls.__name__} needs {flags}: {why}"
                raise UsageError(msg)
            space: Space[Any] = cls(**values)
        else:
            space = _with_values(target, values)
        if nested:
            space = _with_nested(space, nested)
    except (ExperimentError, SearchSpaceError) as error:  # a value the class refuses
        raise UsageError(str(error)) from None
    sample = request.get("sample")
    if sample is not None:
        space = space.sample(sample, request.get("seed", 0))
    elif request.get("seed") is not None:
        flag = request.given["seed"].split()[0]
        msg = f"{flag} is the seed of --sample; add --sample N"
        raise UsageError(msg)
    try:
        if not space.enumerable:
            if request.command in ("status", "results"):
                return space  # no list of settings: they show everything stored
            drawn = [n for n in info.fields if _is_distribution(space, n)]
            msg = (
                f"{cls.__name__} draws {', '.join(drawn) or 'a field'} from a distribution, so "
                "its settings cannot be listed; run a sample of them: --sample N [--sample-seed S]"
            )
            raise UsageError(msg)
        len(space)
    except SearchSpaceError as error:  # linked fields of unequal lengths, say
        raise UsageError(str(error)) from None
    return space


def _with_values(space: Space[Any], values: dict[str, Any]) -> Space[Any]:
    """A space the file defines, with the fields given set in each of its parts."""
    import dataclasses

    from superparams.experiment import Experiment
    from superparams.space import Union

    if not values:
        return space
    if isinstance(space, Union):
        return Union([_with_values(part, values) for part in space.parts])
    if isinstance(space, Experiment):
        return dataclasses.replace(space, **values)  # type: ignore[type-var]
    flags = ", ".join(f"--{n}" for n in values)
    msg = f"{flags}: {space!r} is a sample; set fields in the space it samples"
    raise UsageError(msg)


def _with_nested(space: Space[Any], nested: dict[str, dict[str, tuple[str, str | None]]]) -> Any:
    """The space with dotted flags (``--model.width 512``) set in each nested experiment
    its fields hold: in each candidate of a search, keeping what else they set."""
    import dataclasses

    from superparams.space import Union

    if isinstance(space, Union):
        return Union([_with_nested(part, nested) for part in space.parts])
    where = type(space).__name__
    changes = {h: _set_in(space.__dict__.get(h), f, f"{where}.{h}") for h, f in nested.items()}
    return dataclasses.replace(space, **changes)  # type: ignore[type-var]


def _set_in(held: Any, flags: dict[str, tuple[str, str | None]], where: str) -> Any:
    """``held`` (a nested experiment, or a search over some) with the dotted values set."""
    import dataclasses

    from superparams.experiment import Experiment
    from superparams.space import Grid

    if isinstance(held, Grid):
        points = [_set_in(p, flags, where) for p in held.points]
        return type(held)(points, link=held.link, weights=held.weights)
    if not isinstance(held, Experiment):
        flag = next(iter(flags.values()))[0]
        msg = f"{flag}: {where} holds {held!r}, not an experiment whose fields could be set"
        raise UsageError(msg)
    info = type(held)._sp_info()
    values: dict[str, Any] = {}
    deeper: dict[str, dict[str, tuple[str, str | None]]] = {}
    for name, (flag, text) in flags.items():
        head, dot, rest = name.partition(".")
        if head in {n for n, _ in info.derived}:
            msg = f"{flag}: {type(held).__name__}.{head} is derived from the other fields"
            raise UsageError(msg + "; it cannot be set")
        if dot:
            deeper.setdefault(head, {})[rest] = (flag, text)
        else:
            values[name] = _field_value(flag, text, info.annotations.get(name))
    for head, more in deeper.items():
        values[head] = _set_in(held.__dict__.get(head), more, f"{where}.{head}")
    return dataclasses.replace(held, **values)  # type: ignore[type-var]


def _is_distribution(space: Any, name: str) -> bool:
    from superparams.space import Distribution

    return isinstance(space.__dict__.get(name), Distribution)


def _field_value(flag: str, text: str | None, annotation: Any) -> Any:
    """A field's value from its text: one value, or a search over several."""
    from superparams._values import (
        BadRange,
        BadValue,
        Unsettable,
        expected,
        numbers,
        parse,
        split,
    )
    from superparams.identity import Mismatch, conform
    from superparams.space import search

    if text is None:
        return True
    items = split(text)
    values: list[Any] = []
    for item in items:
        try:
            spanned = numbers(item, annotation)
        except BadValue:
            example = (
                "1:5 or 1:9:2" if "int" in expected(annotation) else "0.1:0.5:0.1 or 1e-4:1:x10"
            )
            msg = (
                f"{flag} expects {expected(annotation)}, or a range of them such as "
                f"{example}, got {item!r}"
            )
            raise UsageError(msg) from None
        except BadRange as error:
            msg = f"{flag} {error}"
            raise UsageError(msg) from None
        try:
            # the text read by the annotation, then the check a value from Python meets
            if spanned is not None:
                values.extend(conform(v, annotation) for v in spanned)
            else:
                values.append(conform(parse(item, annotation), annotation))
        except (BadValue, Mismatch) as error:
            hint = error.hint if isinstance(error, BadValue) else ""
            within = f" (in {text!r})" if len(items) > 1 else ""
            msg = f"{flag} expects {expected(annotation)}, got {item!r}{within}{hint}"
            raise UsageError(msg) from None
        except Unsettable as error:
            msg = f"{flag} cannot be set from the command line: {error}"
            raise UsageError(msg) from None
    return values[0] if len(values) == 1 else search(*values)


# -- help ------------------------------------------------------------------------------------


def _usage(prog: str) -> str:
    return (
        f"usage: {prog} EXPERIMENT [--FIELD VALUE ...] [options]\n"
        f"       {prog} {{status,results,logs,clean}} EXPERIMENT [...]"
    )


def _options_help(command: str, taken: frozenset[str] = frozenset()) -> str:
    """The options of a command, one line each; ``taken``: flags fields have, left out."""
    lines, hidden = [], []
    for option in OPTIONS:
        if command not in option.commands:
            continue
        shown = _primary_names(option, taken)
        if not shown:  # every spelling is a field's: the field has the flag
            hidden.append(option.names[0])
            continue
        names = ", ".join(shown)
        if option.metavar:
            names += f" {option.metavar}"
        lines.append(f"  {names:<22} {option.help}")
    if hidden:
        these = ", ".join(hidden)
        lines.append(
            f"  ({these} set{'s' if len(hidden) == 1 else ''} a field here, not the option)"
        )
    return "\n".join(lines)


def _primary_names(option: _Option, taken: frozenset[str] = frozenset()) -> list[str]:
    """The spellings shown in help: the short one and the first long one no field takes."""
    short = [n for n in option.names if not n.startswith("--")]
    long = [n for n in option.names if n.startswith("--") and n not in taken][:1]
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

exit status: 0 every setting completed, 1 some failed, 2 usage error, 3 the store could
not be written or read, 4 the store is in use by another run, 5 the experiment could not
be loaded, 6 an engine could not be reached, 130 interrupted
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
            rows += _nested_rows(name, info.annotations.get(name), {cls})
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
    fields = _fields_of(found)
    taken = frozenset(
        n for o in OPTIONS for n in o.names if n[:2] == "--" and _field_named(n[2:], fields)
    )
    lines.append(_options_help(command, taken))
    return "\n".join(lines) + "\n"


def _nested_rows(prefix: str, annotation: Any, seen: set[type]) -> list[tuple[str, str]]:
    """The dotted flags of a nested experiment's fields, for help: ``--model.width INT``."""
    nested = _nested_class(annotation)
    if nested is None or nested in seen:
        return []
    info = nested._sp_info()
    rows = []
    for name in info.fields:
        dotted = f"{prefix}.{name}"
        text = _default_text(info, name).replace("default ", f"{nested.__name__}'s default ", 1)
        rows.append((f"--{dotted} {_metavar(info.annotations.get(name))}", text))
        rows += _nested_rows(dotted, info.annotations.get(name), seen | {nested})
    return rows


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
