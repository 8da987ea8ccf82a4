"""The typed request of each command: what it was asked for, checked as a whole.

The grammar (:mod:`superparams._cli._parse`) reads the words of a command line, with the
option table (:mod:`superparams._cli._options`), into one of these: a :class:`Request`
subclass per command (:class:`RunRequest`, :class:`StatusRequest`, :class:`ResultsRequest`,
:class:`PlotRequest`, :class:`ReportRequest`, :class:`ViewRequest`, :class:`LogsRequest`,
:class:`CleanRequest`, :class:`DiffRequest`), whose fields are the destinations of the
command's options (and, for diff, the two versions after the experiment). Making one
checks the options that exclude or need each other, and raises
:class:`~superparams.errors.UsageError` saying which. Also here: :class:`Exit`, how a
command ends with a code once it has said what it had to say.

This room owns the requests, not the words: no spelling of an option is read here, and
nothing prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from superparams.errors import UsageError


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
    rerun_outdated: str | None = None  # code, env or all
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
        self._check_engine()
        self._check_exclusive()

    def _check_engine(self) -> None:
        """``--detach`` and ``--engine-option`` go with an engine that takes them."""
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

    def _check_exclusive(self) -> None:
        """Options that ask for opposite things: one of each pair."""
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
    code_version: str | None = None

    def __post_init__(self) -> None:
        exports = [f"--{n}" for n in ("csv", "json", "parquet", "format") if getattr(self, n)]
        if self.code_version is not None and self.over is not None:
            msg = (
                f"--code-version {self.code_version} shows outcomes row by row; it does not "
                "go with --over (a summary is of each setting's latest outcome; `experiment "
                "diff EXPERIMENT A B` compares two versions over the seeds)"
            )
            raise UsageError(msg)
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
    heatmap: str | None = None
    title: str | None = None
    xlabel: str | None = None
    ylabel: str | None = None
    logx: bool | None = None  # None: log when the values are log-spaced
    logy: bool = False
    size: tuple[float, float] = (6.4, 4.2)

    def __post_init__(self) -> None:
        if self.heatmap is not None and self.hue is not None:
            msg = "--heatmap and --hue do not go together: a heatmap's colour is the metric"
            raise UsageError(msg)
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


@dataclass(frozen=True, kw_only=True)
class DiffRequest(Request):
    """``experiment diff EXPERIMENT A B``: each setting's metrics under two code versions."""

    command: ClassVar[str] = "diff"
    versions: tuple[str, ...] = ()
    metric: tuple[str, ...] | None = None
    json: bool = False

    def __post_init__(self) -> None:
        if len(self.versions) != 2:
            given = (
                f" (got {len(self.versions)}: {' '.join(self.versions)})" if self.versions else ""
            )
            msg = (
                f"experiment diff needs two code versions after the experiment, A and B{given}: "
                "prefixes of their hashes or git commits, e.g. experiment diff params 1a2b 3c4d "
                "(`experiment results EXPERIMENT --code-version all` shows each row's)"
            )
            raise UsageError(msg)


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
    json: bool = False

    def __post_init__(self) -> None:
        if self.json and self.follow:
            msg = "--json lists the logs as they are now; it does not go with --follow"
            raise UsageError(msg)


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
        DiffRequest,
    )
}
