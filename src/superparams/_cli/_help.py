"""What ``experiment --help``, ``experiment COMMAND --help`` and ``experiment EXPERIMENT
--help`` print. Pure text: nothing is imported that ``--help`` does not need.

Every option is listed from the option table (:data:`~superparams._cli._options.OPTIONS`):
its spelling, metavar and help text are the table's, so help cannot name an option the
grammar does not read, nor describe it otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams._cli._options import (
    COMMAND_WORDS,
    OPTIONS,
    RUN_PREFIX,
    Option,
    flag_reaches,
    option_wins,
)
from superparams._cli._parse import Fields, field_named, fields_of, nested_class
from superparams._declared import declared

if TYPE_CHECKING:
    from superparams._cli._find import Found


def usage(prog: str) -> str:
    return (
        f"usage: {prog} EXPERIMENT [--FIELD VALUE ...] [options]\n"
        f"       {prog} {{{','.join(COMMAND_WORDS)}}} EXPERIMENT [...]"
    )


def _options_help(command: str, fields: Fields | None = None) -> str:
    """The options of a command, one line each, each under a spelling that reaches it
    where ``fields``' flags take some (see :func:`option_wins`)."""
    lines, hidden = [], []
    for option in OPTIONS:
        if command not in option.commands:
            continue
        shown = _reaching(option, command, fields)
        if not shown:  # every spelling is a field's: the field has the flag
            hidden.append(option.names[0])
            continue
        names = ", ".join(shown)
        if option.alone:
            names += f"[={option.metavar}]"
        elif option.metavar:
            names += f" {option.metavar}"
        lines.append(f"  {names:<22} {option.help}")
    if hidden:
        these = ", ".join(hidden)
        lines.append(
            f"  ({these} set{'s' if len(hidden) == 1 else ''} a field here, not the option)"
        )
    return "\n".join(lines)


def _reaching(option: Option, command: str, fields: Fields | None) -> list[str]:
    """The spellings shown in help: the short one and the first long one that reaches the
    option, or in a run ``--run-NAME`` when the fields take every long one."""

    def free(flag: str) -> bool:
        return (
            fields is None
            or option_wins(option, flag, command)
            or field_named(flag[2:], fields) is None
        )

    short = [n for n in option.names if not n.startswith("--")]
    longs = [n for n in option.names if n.startswith("--")]
    reach = [n for n in longs if free(n)][:1]
    if longs and not reach and command == "run":
        reach = [f for f in (RUN_PREFIX + n[2:] for n in longs) if free(f)][:1]
    return short + reach


def general_help(prog: str) -> str:
    """What ``experiment --help`` prints."""
    return f"""{usage(prog)}

Run every setting of an experiment that has not completed yet, each in a worker
process; results and logs go to progress/<file>/<Class>/ beside the experiment's file.

EXPERIMENT is looked up here, then in the folders just below (such as experiments/):
  params.Hyperparams       class Hyperparams in params.py
  RQ1                      every experiment in RQ1.py
  index.RQ1                class RQ1 in index.py, or every experiment in index/RQ1.py
  path/to/file.py:Class    a class in a file anywhere (path/to/file.py: all of them)

Fields: --FIELD VALUE sets a field; --FIELD a,b,c searches over a, b and c.
--set FIELD=VALUE sets any field, also one whose flag a command's option has; a
run option that a field's flag hides is --run-OPTION (--run-timeout 1h).
'{prog} EXPERIMENT --help' lists an experiment's fields, types and defaults.

commands:
  status EXPERIMENT        how many settings completed, failed, are running, are left
  results EXPERIMENT       the results table; --over seed, --sort COLUMN, --csv, --json
  plot EXPERIMENT          a metric against a field: --x lr --y acc [--out FILE]
  report EXPERIMENT        one HTML file to share: the view's page, frozen, offline
  view EXPERIMENT          a live page on 127.0.0.1: table, curves, heatmap, until Ctrl-C
  logs EXPERIMENT          the logs of the settings matching --FIELD VALUE; -f follows
  clean EXPERIMENT         delete the stored results and logs, after asking
  diff EXPERIMENT A B      each setting's metrics under code versions A and B, and the change

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
    "plot": "a metric against a parameter (or epoch), with a band of ± std over seeds",
    "report": "one self-contained HTML file: the view's page, frozen, that opens offline",
    "view": "a live page of the results on 127.0.0.1 (its address has a token), until Ctrl-C",
    "logs": "the logs of the settings matching the given field values",
    "clean": "delete every stored result and log of the experiment, after asking",
    "diff": "each setting's metrics under two code versions, A and B (a prefix of each one's "
    "hash or git commit), the change, and with seeds the mean ± std over them",
}


def command_help(prog: str, command: str) -> str:
    fields = " [--FIELD VALUE ...]" if command != "clean" else ""
    versions = " A B" if command == "diff" else ""
    return (
        f"usage: {prog} {command} EXPERIMENT{versions}{fields} [options]\n\n"
        f"{_COMMAND_SUMMARY[command][0].upper()}{_COMMAND_SUMMARY[command][1:]}.\n\n"
        f"options:\n{_options_help(command)}\n"
    )


def experiment_help(prog: str, found: Found, command: str = "run") -> str:
    """What ``experiment EXPERIMENT --help`` prints: the fields, then the options."""
    word = f"{command} " if command != "run" else ""
    versions = " A B" if command == "diff" else ""
    lines = [f"usage: {prog} {word}{found.name}{versions} [--FIELD VALUE ...] [options]", ""]
    for cls in found.classes:
        info = declared(cls)
        doc = _doc(cls)
        lines.append(f"{cls.__name__} ({_shown(found.path)}){': ' + doc if doc else ''}")
        rows = []
        for name in info.fields:
            metavar = _metavar(info.annotations.get(name))
            flag = f"--{name} {metavar}"
            if not flag_reaches(name, command):
                flag = f"--set {name}={metavar}"  # the command's option has --NAME
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
    lines.append("lists go in brackets: --FIELD [1,2] (or [1,2],[3] to search);")
    lines.append("--set FIELD=VALUE sets any field, whatever its name.")
    lines.append("")
    title = "run options" if command == "run" else "options"
    lines.append(f"{title}:")
    lines.append(_options_help(command, fields_of(found)))
    return "\n".join(lines) + "\n"


def _nested_rows(prefix: str, annotation: Any, seen: set[type]) -> list[tuple[str, str]]:
    """The dotted flags of a nested experiment's fields, for help: ``--model.width INT``."""
    nested = nested_class(annotation)
    if nested is None or nested in seen:
        return []
    info = declared(nested)
    rows = []
    for name in info.fields:
        dotted = f"{prefix}.{name}"
        text = _default_text(info, name).replace("default ", f"{nested.__name__}'s default ", 1)
        rows.append((f"--{dotted} {_metavar(info.annotations.get(name))}", text))
        rows += _nested_rows(dotted, info.annotations.get(name), seen | {nested})
    return rows


def _metavar(annotation: Any) -> str:
    """How a field's value is shown in help: INT, PATH, {adam,sgd}, [BOOL]."""
    from superparams._cli._values import is_bool, type_name

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
    from superparams._space import Dimension, Grid, Space

    if name in info.required:
        return "required"
    if name not in info.defaults:
        return "default made by its default_factory"
    default = info.defaults[name]
    if isinstance(default, Grid) and not default.expands():
        if len(default.points) == 1:
            return f"default {_shown_value(default.points[0])}"
        text = f"{default.maker}: " + ", ".join(_shown_value(p) for p in default.points)
        if default.weights is not None:
            text += "; weights " + ", ".join(f"{w:g}" for w in default.weights)
        return text
    if isinstance(default, (Dimension, Space)):
        return repr(default)
    return f"default {_shown_value(default)}"


def _shown_value(value: Any) -> str:
    """A value as it would be typed: enum members by name, paths as text."""
    import enum

    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, Path):
        return str(value)
    return repr(value)


def _shown(path: Path | str) -> str:
    from superparams._cli._find import shown

    return shown(path)
