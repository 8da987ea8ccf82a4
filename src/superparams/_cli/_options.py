"""The option table: every option of every command, in one place.

Each :class:`Option` in :data:`OPTIONS` holds all there is to know about one option: its
spellings (the first long one is the one help, messages and the docs use), the commands
that take it, its metavar (none for a switch), its help text, and how its text becomes a
value (the reader also checks it, raising :class:`~superparams.errors.UsageError` with the
flag and the text). ``--help`` (:mod:`superparams._cli._help`), the grammar
(:mod:`superparams._cli._parse`) and the requests' fields all follow this table, so they
cannot disagree. Also here: which spelling reaches an option where a field has the same
flag (:func:`option_wins`, :data:`RUN_PREFIX`).

This room owns the options, not the words of a command line: reading argv is the grammar's,
and checking options against each other is each command's request's
(:mod:`superparams._cli._requests`). Nothing here prints.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from superparams.errors import UsageError, did_you_mean

#: The words that name a command; ``run`` is never written.
COMMAND_WORDS = (
    "status",
    "results",
    "plot",
    "report",
    "view",
    "logs",
    "clean",
    "diff",
)


@dataclass(frozen=True)
class Option:
    """One option: how it is spelled, where it goes, how help shows it, how it is read."""

    names: tuple[str, ...]
    dest: str  # the field of the command's request it sets
    help: str
    commands: tuple[str, ...]
    metavar: str = ""  # "" for a flag that takes no value
    # (flag as written, text) -> the value, or a UsageError naming both
    read: Callable[[str, str], Any] | None = None
    # spellings kept from before that a field of the same name takes in every command
    yields: tuple[str, ...] = ()
    # given several times, its values add up (a list grows, a dict takes more keys)
    repeats: bool = False
    # the text it reads written alone (``--rerun-outdated``): its value then comes only
    # after ``=`` (``--rerun-outdated=env``), never as the next word; "" for none
    alone: str = ""

    @property
    def spelling(self) -> str | None:
        """The long name that help, messages and the docs use (``--dry-run``, never
        ``--dry_run``); None for an option with short names only."""
        return next((n for n in self.names if n.startswith("--")), None)


# -- how an option's text is read ------------------------------------------------------------


def _int(flag: str, text: str, low: int | None = None, high: int | None = None) -> int:
    try:
        number = int(text)
    except ValueError:
        number = None
    if number is None or (low is not None and number < low) or (high is not None and number > high):
        if high is not None:
            bounds = f" from {low} to {high}"
        else:
            bounds = f" of at least {low}" if low is not None else ""
        msg = f"{flag} expects a whole number{bounds}, got {text!r}"
        raise UsageError(msg)
    return number


def _size(flag: str, text: str) -> tuple[float, float]:
    """``8x5``: a figure's width and height in inches, each above 0 and at most 100."""
    width, _, height = text.lower().partition("x")
    try:
        size = (float(width), float(height))
    except ValueError:
        size = None
    if size is None or not all(0 < v <= 100 for v in size):
        msg = f"{flag} {text!r}: give the width and height in inches, e.g. 8x5"
        raise UsageError(msg)
    return size


def _retries(flag: str, text: str) -> int:
    from superparams._run_options import MAX_RETRIES

    return _int(flag, text, 0, MAX_RETRIES)


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
    from superparams._run_options import MAX_TIMEOUT

    if seconds > MAX_TIMEOUT:
        msg = (
            f"{flag} expects a duration of at most a year ({MAX_TIMEOUT // 86400}d), got {text!r}; "
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
    pairs: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            msg = f"{flag} expects KEY=VALUE pairs separated by commas, got {item!r}"
            raise UsageError(msg)
        add_key(flag, pairs, key.strip(), value.strip())
    return pairs


def add_key(flag: str, pairs: dict[str, Any], key: str, value: Any) -> None:
    """``pairs[key] = value``, for an option's KEY=VALUE pairs, which take each key once.

    Raises:
        UsageError: ``key`` is in ``pairs`` already.
    """
    if key in pairs:
        msg = (
            f"{flag} gives the key {key!r} twice ({pairs[key]!r}, then {value!r}); "
            "give each key once"
        )
        raise UsageError(msg)
    pairs[key] = value


def _engine(flag: str, text: str) -> str:
    from superparams.executors import engines, get_executor

    if text not in engines():
        msg = f"{flag}: no engine {text!r}{did_you_mean(text, engines())}; engines: "
        raise UsageError(msg + ", ".join(engines()))
    get_executor(text)  # its extra is missing: say what to install, before anything runs
    return text


def _names(flag: str, text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        msg = f"{flag} expects column names separated by commas, got {text!r}"
        raise UsageError(msg)
    return names


def _text(flag: str, text: str) -> str:
    return text


def _version(flag: str, text: str) -> str:
    if not text.strip():
        msg = (
            f"{flag} expects all, or a code version (a prefix of its hash or git commit), "
            f"got {text!r}"
        )
        raise UsageError(msg)
    return text.strip()


def _choice(flag: str, text: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        msg = (
            f"{flag} expects one of {', '.join(choices)}, got {text!r}{did_you_mean(text, choices)}"
        )
        raise UsageError(msg)
    return text


def _rule(flag: str, text: str) -> list[Any]:
    from superparams.stopping import parse

    return [parse(text)]


def _objectives(flag: str, text: str) -> list[tuple[str, str | None]]:
    """``--optimize acc`` or ``acc:max,latency:min``: each metric, with its direction."""
    out: list[tuple[str, str | None]] = []
    for item in text.split(","):
        name, colon, mode = item.strip().partition(":")
        if not name or (colon and mode not in ("max", "min")):
            msg = (
                f"{flag} expects the metrics to optimise, each METRIC or METRIC:max or "
                f"METRIC:min, separated by commas, got {item.strip()!r}"
            )
            raise UsageError(msg)
        out.append((name, mode or None))
    return out


def _sampler(flag: str, text: str) -> str:
    from superparams._search import SAMPLERS

    if text not in SAMPLERS:
        msg = f"{flag}: no sampler {text!r}{did_you_mean(text, SAMPLERS)}; samplers: "
        raise UsageError(msg + ", ".join(SAMPLERS))
    return text


def _outdated_kind(flag: str, text: str) -> str:
    from superparams._store._plan import OUTDATED_KINDS

    if text not in OUTDATED_KINDS:
        msg = f"{flag} takes code, env or all (alone: code), got {text!r}"
        raise UsageError(msg)
    return text


# -- the table -------------------------------------------------------------------------------


_RUN = ("run",)
_SAMPLED = ("run", "status", "results", "plot", "report", "view", "logs", "diff")
#: Spelled before a run option's name, it reaches the option that a field's flag hides.
RUN_PREFIX = "--run-"
OPTIONS = (
    Option(
        ("-j", "--num_proc", "--num-proc", "--n_proc", "--n-proc"),  # --n_proc: as 0.1.0
        "num_proc",
        "worker processes (default 1, or one per --gpus id; -1: all cores)",
        _RUN,
        "N",
        _num_proc,
    ),
    Option(
        ("--gpus",),
        "gpus",
        "GPU ids for the workers (CUDA_VISIBLE_DEVICES), e.g. 0,1",
        _RUN,
        "IDS",
        _ids,
    ),
    Option(
        ("--rerun-failed", "--rerun_failed"),
        "rerun_failed",
        "run only the settings that failed before",
        _RUN,
    ),
    Option(
        ("--rerun-outdated", "--rerun_outdated"),
        "rerun_outdated",
        "also run outdated settings: made by earlier code (alone, =code), in another "
        "environment (=env), or both (=all)",
        _RUN,
        "KIND",
        _outdated_kind,
        alone="code",
    ),
    Option(("--fresh",), "fresh", "run every setting again, ignoring earlier results", _RUN),
    Option(
        ("--dry-run", "--dry_run"),
        "dry_run",
        "show what would run (new, done, failed), or what clean would delete; do nothing",
        ("run", "clean"),
    ),
    Option(
        ("--debug",),
        "debug",
        "run here, one by one; open pdb at the first failure",
        _RUN,
    ),
    Option(
        ("--isolate",),
        "isolate",
        "run each setting in a new worker process of its own",
        _RUN,
    ),
    Option(
        ("--timeout",),
        "timeout",
        "fail a setting running longer (90, 90s, 30m, 2h)",
        _RUN,
        "TIME",
        _seconds,
    ),
    Option(
        ("--retries",),
        "retries",
        "try a failed setting up to N more times",
        _RUN,
        "N",
        _retries,
    ),
    Option(
        ("--engine",),
        "engine",
        "where settings run: local (default), inline, dask, ray or slurm",
        _RUN,
        "NAME",
        _engine,
    ),
    Option(
        ("--detach",),
        "detach",
        "return once the settings are queued (--engine slurm); a later run collects them",
        _RUN,
    ),
    Option(
        ("--engine-option", "--engine-options"),
        "engine_options",
        "the engine's own options, KEY=VALUE[,KEY=VALUE] (e.g. address=tcp://head:8786)",
        _RUN,
        "K=V",
        lambda flag, text: _key_values(flag, text),
        repeats=True,
    ),
    Option(
        ("--sample",),
        "sample",
        "only N settings, drawn at random (for distributions)",
        _SAMPLED,
        "N",
        lambda flag, text: _int(flag, text, 1),
    ),
    Option(
        ("--sample-seed", "--sample_seed", "--seed"),
        "seed",
        "the seed --sample draws with (default 0)",
        _SAMPLED,
        "S",
        lambda flag, text: _int(flag, text),
        yields=("--seed",),  # as before: where no field is named seed
    ),
    Option(
        ("--stop",),
        "stop",
        "a stop rule, in place of the class's: median(loss, step=epoch), threshold(loss, "
        "above=10), halving(loss, step=epoch, eta=3); several --stop for several rules",
        _RUN,
        "RULE",
        _rule,
        repeats=True,
    ),
    Option(
        ("--optimize",),
        "optimize",
        "search adaptively for the best mean of METRIC over the seeds (or METRIC:max,"
        "OTHER:min for several)",
        _RUN,
        "METRIC",
        _objectives,
    ),
    Option(("--max",), "max", "with --optimize: the largest mean is best (the default)", _RUN),
    Option(("--min",), "min", "with --optimize: the smallest mean is best", _RUN),
    Option(
        ("--budget",),
        "budget",
        "with --optimize: how many configurations to try in all, stored ones included",
        _RUN,
        "N",
        lambda flag, text: _int(flag, text, 1),
    ),
    Option(
        ("--sampler",),
        "sampler",
        "with --optimize: tpe (default), cmaes, random or gp; seeded by --sample-seed",
        _RUN,
        "NAME",
        _sampler,
    ),
    Option(("-q", "--quiet"), "quiet", "print only the summary at the end", _RUN),
    Option(("-y", "--yes"), "yes", "do not ask: resume (run), delete (clean)", ("run", "clean")),
    Option(
        ("--sort",),
        "sort",
        "sort by a column (-COLUMN or --desc: largest first)",
        ("results",),
        "COLUMN",
        lambda flag, text: text,
    ),
    Option(("--desc",), "desc", "sort largest first", ("results",)),
    Option(
        ("--over",),
        "over",
        "summarise over these fields, e.g. seed: mean ± std",
        ("results", "plot"),
        "FIELDS",
        _names,
    ),
    Option(
        ("--where",),
        "where",
        "keep the rows an SQL condition is true for, e.g. 'acc > 0.9'",
        ("results",),
        "EXPR",
        _text,
    ),
    Option(
        ("--columns",),
        "columns",
        "show these columns (after the parameters that vary), e.g. acc,f1",
        ("results",),
        "COLS",
        _names,
    ),
    Option(("--last",), "last", "only the last row of each setting", ("results",)),
    Option(
        ("--code-version", "--code_version"),
        "code_version",
        "all: every outcome kept, those a rerun replaced marked; or one code version's "
        "(a prefix of its hash or git commit)",
        ("results",),
        "VERSION",
        _version,
    ),
    Option(
        ("--metric",),
        "metric",
        "the metrics to compare (default: every one), e.g. acc,f1",
        ("diff",),
        "NAMES",
        _names,
    ),
    Option(
        ("--x",), "x", "the column along the x axis: a parameter, or epoch", ("plot",), "COL", _text
    ),
    Option(("--y",), "y", "the metric to plot", ("plot",), "METRIC", _text),
    Option(
        ("--hue",),
        "hue",
        "one line (colour) per value of this parameter",
        ("plot",),
        "PARAM",
        _text,
    ),
    Option(
        ("--heatmap",),
        "heatmap",
        "a heatmap: the metric's mean at each pair of --x and this parameter",
        ("plot",),
        "PARAM",
        _text,
    ),
    Option(
        ("--title",), "title", "the figure's title (default: the class)", ("plot",), "TEXT", _text
    ),
    Option(("--xlabel",), "xlabel", "the x axis's label", ("plot",), "TEXT", _text),
    Option(("--ylabel",), "ylabel", "the y axis's label", ("plot",), "TEXT", _text),
    Option(
        ("--logx",), "logx", "a log x axis (default: when the values are log-spaced)", ("plot",)
    ),
    Option(("--logy",), "logy", "a log y axis", ("plot",)),
    Option(
        ("--size",),
        "size",
        "the figure's width and height in inches, e.g. 8x5",
        ("plot",),
        "WxH",
        _size,
    ),
    Option(
        ("--out", "-o"),
        "out",
        "the file to write: .png, .svg, .pdf, .html (report: .html)",
        ("plot", "report"),
        "FILE",
        _text,
    ),
    Option(("--csv",), "csv", "write the table as CSV to stdout", ("results",)),
    Option(
        ("--json",),
        "json",
        "write one JSON object to stdout: the table (results), the counts (status), the "
        "plan (run --dry-run), what would go (clean --dry-run), the logs (logs), the "
        "comparison (diff)",
        ("results", "status", "run", "clean", "logs", "diff"),
    ),
    Option(
        ("--format",),
        "format",
        "with --over: a table for a paper, latex or markdown (mean ± std, the best in bold)",
        ("results",),
        "FORMAT",
        lambda flag, text: _choice(flag, text, ("latex", "markdown")),
    ),
    Option(
        ("--parquet",),
        "parquet",
        "write the table to a parquet file",
        ("results",),
        "PATH",
        lambda flag, text: text,
    ),
    Option(("--force",), "force", "let --parquet replace a file that exists", ("results",)),
    Option(("-f", "--follow"), "follow", "keep printing the logs of running settings", ("logs",)),
    Option(
        ("-n", "--lines"),
        "lines",
        "only the last N lines of each log",
        ("logs",),
        "N",
        lambda flag, text: _int(flag, text, 0),
    ),
    Option(
        ("--set",),
        "overrides",  # it adds to the field values, as a field's flag does
        "set a field whatever its name, VALUES read as --NAME reads them",
        _SAMPLED,
        "NAME=VALUES",
        _text,
    ),
)
_BY_NAME = {name: option for option in OPTIONS for name in option.names}


def option_wins(option: Option | None, flag: str, command: str) -> bool:
    """Whether ``flag`` is ``option`` in ``command`` even where a field has that name.

    Outside a run a command's own option wins over a field's flag (``--set NAME=VALUES``
    reaches the field); in a run the field keeps its flag (``--run-NAME`` reaches the
    option). A spelling kept from before (``--seed``) yields to a field everywhere.
    """
    return (
        option is not None
        and command != "run"
        and command in option.commands
        and flag not in option.yields
    )


def flag_reaches(name: str, command: str) -> bool:
    """Whether ``--NAME`` sets the field ``name`` in ``command`` (else ``--set`` does):
    not where the command's own option wins, nor for ``--help``, which always helps."""
    flag = f"--{name}"
    return flag != "--help" and not option_wins(option_named(flag), flag, command)


def option_named(flag: str) -> Option | None:
    """The option a flag spells: one of its names, or a run option's after ``--run-``."""
    option = _BY_NAME.get(flag)
    if option is None and flag.startswith((RUN_PREFIX, "--run_")):
        option = _BY_NAME.get("--" + flag[len(RUN_PREFIX) :])
        if option is not None and "run" not in option.commands:
            return None
    return option


def closest_option(flag: str, command: str) -> str | None:
    """The spelling of the option of ``command`` closest to ``flag``, if any is close."""
    spelled = {
        name: option.spelling
        for option in OPTIONS
        if command in option.commands and option.spelling is not None
        for name in option.names
        if name.startswith("--")
    }
    close = difflib.get_close_matches(flag, list(spelled), n=1)
    return spelled[close[0]] if close else None
