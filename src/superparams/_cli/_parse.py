"""The grammar of the ``experiment`` command, and the typed request of each command.

::

    experiment EXPERIMENT [--FIELD VALUE ...] [options]   run the settings not completed yet
    experiment status  EXPERIMENT [--FIELD VALUE ...]     what is done, failed, running, left
    experiment results EXPERIMENT [--over SEED] [--where EXPR] [--sort COL] [--csv | ...]
    experiment plot    EXPERIMENT --x PARAM --y METRIC [--hue PARAM] [--out FILE]
    experiment report  EXPERIMENT [--out report.html]
    experiment view    EXPERIMENT                      a live page until Ctrl-C
    experiment logs    EXPERIMENT [--FIELD VALUE ...] [-f] [-n N]
    experiment clean   EXPERIMENT [--yes]

A command word is a command only when it comes first and an experiment follows it, so
``experiment params.Hyperparams ...`` always means run. The words before the experiment's
name are read first (:func:`split`), then, once the experiment is found and its fields are
known, the words after it (:func:`read`). Where a field and an option share a flag, in a
run the field keeps it (the option is ``--run-NAME``), and in every other command the
command's option wins (:func:`option_wins`); ``--set NAME=VALUES`` sets any field in every
command. :meth:`Words.request` turns what was read into
the command's own request (:class:`RunRequest`, ...), checking the options that exclude
each other. Nothing here prints.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._experiment import Experiment

COMMAND_WORDS = (
    "status",
    "results",
    "plot",
    "report",
    "view",
    "logs",
    "clean",
)  # `run` is never written


# -- options ---------------------------------------------------------------------------------


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


def _retries(flag: str, text: str) -> int:
    from superparams._api import MAX_RETRIES

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
    from superparams._api import MAX_TIMEOUT

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
class Option:
    names: tuple[str, ...]
    dest: str
    help: str
    commands: tuple[str, ...]
    metavar: str = ""  # "" for a flag that takes no value
    read: Callable[[str, str], Any] | None = None
    # spellings kept from before that a field of the same name takes in every command
    yields: tuple[str, ...] = ()
    # given several times, its values add up (a list grows, a dict takes more keys)
    repeats: bool = False


def _names(flag: str, text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        msg = f"{flag} expects column names separated by commas, got {text!r}"
        raise UsageError(msg)
    return names


def _text(flag: str, text: str) -> str:
    return text


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


_RUN, _SAMPLED = ("run",), ("run", "status", "results", "plot", "report", "view", "logs")
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
        "also run the settings an earlier version of the code made",
        _RUN,
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
        "plan (run --dry-run), what would go (clean --dry-run)",
        ("results", "status", "run", "clean"),
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


class Exit(Exception):
    """Ends a command with an exit code, once it has said what it had to say.

    Not an error: ``main`` prints nothing for it (a run whose settings failed ends so,
    with code 1, after its report).
    """

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


@dataclass(frozen=True, kw_only=True)
class Request:
    """What a command was asked for: the experiment, and the field values given.

    ``overrides`` maps a field (``lr``, ``model.width``) to the flag as written and its
    text (None for a bare boolean flag); ``given`` maps each option and field given to the
    words that gave it, for messages.
    """

    command: ClassVar[str]
    target: str
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    given: dict[str, str] = field(default_factory=dict)
    sample: int | None = None
    seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunRequest(Request):
    """``experiment EXPERIMENT ...``: run the settings not completed yet."""

    command: ClassVar[str] = "run"
    num_proc: int | None = None
    gpus: list[int | str] | None = None
    rerun_failed: bool = False
    rerun_outdated: bool = False
    fresh: bool = False
    dry_run: bool = False
    debug: bool = False
    isolate: bool = False
    timeout: float | None = None
    retries: int = 0
    engine: str | None = None
    engine_options: dict[str, str] | None = None
    detach: bool = False
    quiet: bool = False
    yes: bool = False
    json: bool = False
    stop: list[Any] | None = None
    optimize: list[tuple[str, str | None]] | None = None
    max: bool = False
    min: bool = False
    budget: int | None = None
    sampler: str | None = None

    @property
    def objectives(self) -> tuple[list[str], list[str]]:
        """The metrics ``--optimize`` names, and the direction of each."""
        default = "min" if self.min else "max"
        pairs = self.optimize or []
        return [m for m, _ in pairs], [mode or default for _, mode in pairs]

    def __post_init__(self) -> None:
        if self.json and not self.dry_run:
            msg = "--json says what a run would do: add --dry-run (a run itself writes no JSON)"
            raise UsageError(msg)
        self._check_search()
        if self.detach:
            from superparams._api import reattaches

            if not reattaches(self.engine):
                msg = (
                    f"--detach leaves settings queued on a cluster, and the "
                    f"{self.engine or 'local'} engine runs them in this run; use --engine slurm"
                )
                raise UsageError(msg)
        if self.engine_options:
            from superparams.executors import get_executor

            get_executor(self.engine or "local").read_options(self.engine_options)
        if self.debug and self.isolate:
            msg = (
                "--debug runs settings in this process and --isolate each in a process of "
                "its own; pick one"
            )
            raise UsageError(msg)
        if self.fresh and self.rerun_failed:
            msg = (
                "--fresh runs every setting again and --rerun-failed only the failed ones; pick one"
            )
            raise UsageError(msg)
        if self.fresh and self.rerun_outdated:
            msg = "--fresh runs every setting again, outdated ones included; drop --rerun-outdated"
            raise UsageError(msg)

    def _check_search(self) -> None:
        """The options of an adaptive search go together, and with nothing that plans a
        list of settings."""
        if self.optimize is None:
            given = [f"--{n}" for n in ("budget", "sampler", "max", "min") if getattr(self, n)]
            if given:
                msg = f"{' and '.join(given)} go with --optimize METRIC, which is not given"
                raise UsageError(msg)
            return
        if self.budget is None:
            msg = (
                "--optimize needs --budget N: how many configurations to try in all, e.g. "
                "--budget 40"
            )
            raise UsageError(msg)
        if self.max and self.min:
            msg = "--max and --min ask for opposite directions; pick one"
            raise UsageError(msg)
        for flag in ("sample", "detach", "fresh", "rerun_failed", "rerun_outdated", "isolate"):
            if getattr(self, flag):
                spelled = "--" + flag.replace("_", "-")
                msg = (
                    f"{spelled} does not go with --optimize: a search proposes its own "
                    "settings and resumes from what is stored"
                )
                raise UsageError(msg)


@dataclass(frozen=True, kw_only=True)
class StatusRequest(Request):
    """``experiment status EXPERIMENT``: what is done, failed, running, left."""

    command: ClassVar[str] = "status"
    json: bool = False


@dataclass(frozen=True, kw_only=True)
class ResultsRequest(Request):
    """``experiment results EXPERIMENT``: the table, shown or exported."""

    command: ClassVar[str] = "results"
    sort: str | None = None
    desc: bool = False
    csv: bool = False
    json: bool = False
    format: str | None = None
    parquet: str | None = None
    force: bool = False
    over: tuple[str, ...] | None = None
    where: str | None = None
    columns: tuple[str, ...] | None = None
    last: bool = False

    def __post_init__(self) -> None:
        exports = [f"--{n}" for n in ("csv", "json", "parquet", "format") if getattr(self, n)]
        if self.format is not None and self.over is None:
            msg = (
                f"--format {self.format} writes a summary over seeds, one row per setting; "
                "add --over seed (or the fields to summarise over)"
            )
            raise UsageError(msg)
        if len(exports) > 1:
            msg = f"{' and '.join(exports)} both write the table; pick one"
            raise UsageError(msg)


@dataclass(frozen=True, kw_only=True)
class PlotRequest(Request):
    """``experiment plot EXPERIMENT --x COL --y METRIC``: a metric against a column, to a file."""

    command: ClassVar[str] = "plot"
    x: str | None = None
    y: str | None = None
    hue: str | None = None
    over: tuple[str, ...] | None = None
    out: str | None = None

    def __post_init__(self) -> None:
        missing = [f"--{n}" for n in ("x", "y") if getattr(self, n) is None]
        if missing:
            msg = (
                f"experiment plot needs {' and '.join(missing)}: the column along the x axis "
                "and the metric to plot, e.g. --x lr --y acc"
            )
            raise UsageError(msg)
        if self.out is not None:
            plot_format(self.out, "--out")


@dataclass(frozen=True, kw_only=True)
class ReportRequest(Request):
    """``experiment report EXPERIMENT``: one HTML file to share."""

    command: ClassVar[str] = "report"
    out: str | None = None

    def __post_init__(self) -> None:
        if self.out is not None and plot_format(self.out, "--out") != "html":
            msg = f"--out {self.out!r}: a report is an HTML file; give a name ending in .html"
            raise UsageError(msg)


@dataclass(frozen=True, kw_only=True)
class ViewRequest(Request):
    """``experiment view EXPERIMENT``: a live page of the results, until Ctrl-C."""

    command: ClassVar[str] = "view"


#: The files ``experiment plot`` writes, by extension.
PLOT_FORMATS = ("png", "svg", "pdf", "html")


def plot_format(path: str, flag: str) -> str:
    """The format a file's extension names.

    Raises:
        UsageError: an extension no plot is written as.
    """
    suffix = path.rpartition(".")[2].lower() if "." in path.rpartition("/")[2] else ""
    if suffix == "htm":
        return "html"
    if suffix not in PLOT_FORMATS:
        msg = (
            f"{flag} {path!r}: the extension picks the format; give a name ending in "
            f"{', '.join('.' + f for f in PLOT_FORMATS)}"
        )
        raise UsageError(msg)
    return suffix


@dataclass(frozen=True, kw_only=True)
class LogsRequest(Request):
    """``experiment logs EXPERIMENT``: the logs of the settings the field values match."""

    command: ClassVar[str] = "logs"
    follow: bool = False
    lines: int | None = None


@dataclass(frozen=True, kw_only=True)
class CleanRequest(Request):
    """``experiment clean EXPERIMENT``: delete what is stored, after asking."""

    command: ClassVar[str] = "clean"
    yes: bool = False
    dry_run: bool = False
    json: bool = False

    def __post_init__(self) -> None:
        if self.json and not self.dry_run:
            msg = "--json says what clean would delete: add --dry-run, which deletes nothing"
            raise UsageError(msg)
        if self.overrides:
            flags = " ".join(flag for flag, _ in self.overrides.values())
            msg = (
                "clean removes every stored result of the experiment, not those of some "
                f"settings; drop {flags}"
            )
            raise UsageError(msg)


REQUESTS: dict[str, type[Request]] = {
    r.command: r
    for r in (
        RunRequest,
        StatusRequest,
        ResultsRequest,
        PlotRequest,
        ReportRequest,
        ViewRequest,
        LogsRequest,
        CleanRequest,
    )
}


@dataclass
class Words:
    """What the words of a command said, as they are read."""

    command: str = "run"
    target: str | None = None
    help: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # field name -> (the flag as written, its text; None for a bare boolean flag)
    overrides: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # option dest (or --field) -> the words that gave it, to name both if given twice
    given: dict[str, str] = field(default_factory=dict)

    def request(self) -> Request:
        """The command's typed request.

        Raises:
            UsageError: options that exclude each other, or one the engine does not take.
        """
        assert self.target is not None  # the caller has found the experiment
        return REQUESTS[self.command](
            target=self.target, overrides=self.overrides, given=self.given, **self.options
        )


@dataclass(frozen=True)
class Fields:
    """The fields flags may set: their names, and which take true or false."""

    owner: str  # the class, or the file when it holds several
    several: bool
    names: tuple[str, ...]
    flags: frozenset[str]  # bool fields: `--flag` alone means true
    derived: frozenset[str]
    classes: tuple[type[Experiment], ...] = ()  # whose fields these are, for dotted names


def is_number(text: str) -> bool:
    """Whether text reads as a number (``-1`` is a value, not an option; a column of them
    aligns right)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not is_number(token)


def split(argv: list[str]) -> tuple[Words, list[str], list[str]]:
    """The command, and the words before and after the experiment's name."""
    request = Words()
    words = argv
    if (
        len(argv) >= 2
        and argv[0] in COMMAND_WORDS
        and (not _is_option(argv[1]) or argv[1] in ("-h", "--help"))
    ):
        request.command, words = argv[0], argv[1:]
    i = 0
    while i < len(words):
        word = words[i]
        if not _is_option(word):
            request.target = word
            return request, words[:i], words[i + 1 :]
        option = option_named(word)
        i += 2 if option is not None and option.metavar and "=" not in word else 1
    return request, words, []


def read(request: Words, words: list[str], fields: Fields | None) -> None:
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
        option = option_named(flag)
        if fields is not None and name and not option_wins(option, flag, request.command):
            target = field_named(name, fields)
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
            negated = field_named(name[3:], fields) if name.startswith("no") else None
            if negated is not None and negated in fields.flags and value is None:
                _override(request, negated, flag, "false", word)
                continue
        if option is None or request.command not in option.commands:
            raise UsageError(_unknown_option(flag, request, fields, option))
        if option.metavar:
            if value is None:
                value, i = _value_after(flag, words, i)
            if option.dest == "overrides":
                _set(request, flag, value, fields)
                continue
            assert option.read is not None
            read = option.read(flag, value)
            if option.repeats and option.dest in request.options:
                earlier = request.options[option.dest]
                read = [*earlier, *read] if isinstance(read, list) else {**earlier, **read}
            else:
                _once(request, option.dest, f"{flag} {value}")
            request.options[option.dest] = read
        elif eq:
            msg = f"{flag} takes no value, got {word!r}"
            raise UsageError(msg)
        else:
            _once(request, option.dest, flag)
            request.options[option.dest] = True


def _set(request: Words, flag: str, text: str, fields: Fields | None) -> None:
    """``--set NAME=VALUES``: the field NAME, whatever its name, read as ``--NAME VALUES``.

    Raises:
        UsageError: no ``=``, before the experiment's name, or no such field.
    """
    name, eq, value = text.partition("=")
    name = name.strip()
    if not eq or not name:
        msg = (
            f"{flag} expects NAME=VALUES, a field and its value (or values separated by "
            f"commas), e.g. {flag} lr=0.1,0.01; got {text!r}"
        )
        raise UsageError(msg)
    if fields is None:
        msg = (
            f"{flag} {text} sets a field; it goes after the experiment's name: "
            f"experiment EXPERIMENT {flag} {text}"
        )
        raise UsageError(msg)
    written = f"{flag} {name}"
    target = field_named(name, fields)
    if target is None and "." in name:
        target, _ = _dotted(written, name, fields)
    if target is None:
        raise UsageError(_no_field(written, name, fields))
    _override(request, target, written, value, None, f"{flag} {text}")


def _override(
    request: Words,
    name: str,
    flag: str,
    value: str | None,
    bare: str | None,
    written: str | None = None,
) -> None:
    """Set a field's text, once: a second value would silently replace the first.

    ``bare`` is the flag as written when it stands alone (``--flag``, ``--no-flag``);
    ``written`` the words that gave the value, when not ``flag value`` (``--set x=1``).
    """
    written = bare or written or f"{flag} {value}"
    key = f"--{name}"
    earlier = request.given.get(key)
    if earlier is not None:
        msg = f"--{name} is given twice ({earlier}, then {written}); give it once"
        before, spelled = request.overrides[name][1], request.overrides[name][0]
        if bare is None and " " in earlier:  # both with a value: a search holds both
            sep = "=" if spelled.startswith("--set ") else " "
            both = f"{spelled}{sep}{before},{value}"
            msg += f", or search over both: {both}"
        raise UsageError(msg)
    request.given[key] = written
    request.overrides[name] = (flag, value)


def _once(request: Words, dest: str, written: str) -> None:
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


def field_named(name: str, fields: Fields) -> str | None:
    if name in fields.names:
        return name
    underscored = name.replace("-", "_")
    return underscored if underscored in fields.names else None


def _dotted(flag: str, name: str, fields: Fields) -> tuple[str | None, bool]:
    """The field a dotted flag (``--model.width``) names in a nested experiment, and
    whether it takes true or false; None when the first name is no field at all.

    Raises:
        UsageError: the first name holds no experiment, or the nested one has no such field.
    """
    from superparams._cli._values import expected, is_bool

    head, _, rest = name.partition(".")
    top = field_named(head, fields)
    if top is None or not rest:
        return None, False
    owner = next(c for c in fields.classes if top in c._sp_info().fields)
    where, annotation = f"{owner.__name__}.{top}", owner._sp_info().annotations.get(top)
    path = [top]
    for part in rest.split("."):
        nested = nested_class(annotation)
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


def nested_class(annotation: Any) -> type[Experiment] | None:
    """The experiment class a field holds, from its annotation (``Model``), or None."""
    if isinstance(annotation, type) and hasattr(annotation, "_sp_info"):
        return annotation
    return None


def _unknown_option(flag: str, request: Words, fields: Fields | None, option: Option | None) -> str:
    if option is not None:
        where = "a run" if option.commands == _RUN else "/".join(option.commands)
        return f"{flag} is an option of {where}, not of {_command_name(request)}"
    name = flag.lstrip("-")
    if fields is None:
        return (
            f"unknown option {flag}; field values go after the experiment's name: "
            f"experiment EXPERIMENT {flag} VALUE"
        )
    if not did_you_mean(name, fields.names):
        close = _close_option(flag, request.command)
        if close:
            owner = f"any experiment in {fields.owner}" if fields.several else fields.owner
            return f"{flag} is not an option, nor a field of {owner}{close}{_listed(fields)}"
    return _no_field(flag, name, fields)


def _close_option(flag: str, command: str) -> str:
    """A "did you mean" naming the option of ``command`` closest to ``flag``, under the
    spelling help and the README use (``--dry-run``, never ``--dry_run``)."""
    spelled = {
        n: next(m for m in o.names if m.startswith("--"))
        for o in OPTIONS
        if command in o.commands
        for n in o.names
        if n.startswith("--")
    }
    close = difflib.get_close_matches(flag, list(spelled), n=1)
    return f" (did you mean {spelled[close[0]]!r}?)" if close else ""


def _listed(fields: Fields) -> str:
    its = "their" if fields.several else "its"
    return f"; {its} fields are {', '.join(fields.names)}" if fields.names else "; no fields"


def _no_field(flag: str, name: str, fields: Fields) -> str:
    hint = did_you_mean(name, fields.names)
    if fields.several:
        return (
            f"{flag}: no experiment in {fields.owner} has a field {name!r}{hint}{_listed(fields)}"
        )
    return f"{flag}: {fields.owner} has no field {name!r}{hint}{_listed(fields)}"


def _command_name(request: Words) -> str:
    return "a run" if request.command == "run" else f"`experiment {request.command}`"


# -- from the words to spaces ------------------------------------------------------------------


def fields_of(found: Found) -> Fields:
    """The fields the experiments ``found`` names take flags for."""
    from superparams._cli._find import shown
    from superparams._cli._values import is_bool

    names: dict[str, None] = {}
    flags: set[str] = set()
    derived: set[str] = set()
    for cls in found.classes:
        info = cls._sp_info()
        names.update(dict.fromkeys(info.fields))
        derived.update(n for n, _ in info.derived)
        flags.update(n for n in info.fields if is_bool(info.annotations.get(n)))
    several = len(found.classes) > 1
    owner = shown(found.path) if several else found.classes[0].__name__
    names.update(dict.fromkeys(sorted(derived)))
    return Fields(owner, several, tuple(names), frozenset(flags), frozenset(derived), found.classes)
