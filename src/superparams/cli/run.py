"""What each command of ``experiment`` does once its words are read.

:mod:`superparams.cli` reads the words, finds the experiment and builds its spaces; this
room runs them (:func:`run`: the overview, the resume question, the display, the end of
run report) or reads what is stored (:func:`status`, :func:`results`, :func:`logs`,
:func:`clean`). It prints what it has to say and returns an exit code; errors it raises
are printed by :func:`superparams.cli.main`. polars and rich are imported where needed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from superparams._find import shown as _shown
from superparams.cli import INTERRUPTED, Request
from superparams.display import outdated as outdated_text
from superparams.errors import SuperparamsError, UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from superparams._find import Found
    from superparams.events import Event, RunFinished
    from superparams.experiment import Experiment
    from superparams.space import Space
    from superparams.store import Plan, Store


# -- run -----------------------------------------------------------------------------------------


def run(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> int:
    codes = []
    names = found.names or tuple(s.experiment_class.__name__ for s in spaces)
    for number, (space, name) in enumerate(zip(spaces, names, strict=True)):
        if number and not request.get("quiet"):
            _say("")  # a blank line between the experiments of one file
        code = _run_one(found, space, request, prog, name)
        codes.append(code)
        if code == INTERRUPTED:
            break
    return INTERRUPTED if INTERRUPTED in codes else max(codes)


def _run_one(found: Found, space: Space[Any], request: Request, prog: str, name: str) -> int:
    from superparams.runner import run_all, worker_count

    cls = space.experiment_class
    store = _store(space)
    quiet, dry_run = bool(request.get("quiet")), bool(request.get("dry_run"))
    fresh, only_failed = bool(request.get("fresh")), bool(request.get("rerun_failed"))
    rerun_outdated = bool(request.get("rerun_outdated"))
    if not dry_run:
        _check_unlocked(store)
    stored = _plan(space, store)
    earlier = len(stored.done) + len(stored.failed) + len(stored.interrupted)
    if not quiet or dry_run:
        summary = stored.summary() if earlier or stored.stale else ""
        _say(_overview(found, space, store, summary, name))
    if dry_run:
        _say(
            _plan_text(
                space, stored, fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated
            )
        )
        return 0
    if stored.outdated and not fresh and not rerun_outdated:
        # said even with --quiet: these results are kept, but they are not from this code
        _say(f"{outdated_text(len(stored.outdated), cls.__name__)}; kept as stored ({_RERUN})")
    to_run = len(stored.to_run(fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated))
    resuming = earlier and not fresh and not only_failed and not rerun_outdated
    ask = resuming and _interactive() and not request.get("yes")
    if not to_run and not (ask and stored.outdated):
        return _nothing_to_run(found, space, stored, prog, quiet=quiet, only_failed=only_failed)
    if resuming:
        if ask:
            if quiet:  # the overview did not say what was found
                _say(f"stored: {stored.summary()}")
            answer = _ask_resume(stored, to_run)
            if answer == "quit":
                _say("nothing run")
                return 0
            fresh, rerun_outdated = answer == "fresh", answer == "outdated"
            to_run = len(
                stored.to_run(fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated)
            )
            if not to_run:
                return _nothing_to_run(found, space, stored, prog, quiet=quiet, only_failed=False)
        elif not quiet:
            _say(f"resuming: {_resume_text(stored, to_run)}")

    gpus = request.get("gpus")
    asked = request.get("num_proc")
    if asked is None:
        asked = len(gpus) if gpus else 1
    _, num_proc, notice = worker_count(asked, to_run, flag="-j", equals=" ")
    if notice:
        _say(notice)
    debug = bool(request.get("debug"))
    if debug and num_proc > 1:
        _say("--debug runs settings one by one in this process; -j is ignored")
    if not quiet:
        engine = request.get("engine") or "local"
        where = "in this process" if debug else f"on {num_proc} worker process"
        where += "es" if not debug and num_proc > 1 else ""
        if engine not in ("local", "inline") and not debug:
            where = f"on the {engine} engine"
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
            rerun_outdated=rerun_outdated,
            timeout=request.get("timeout"),
            retries=request.get("retries", 0),
            engine=request.get("engine") or "local",
            engine_options=request.get("engine_options"),
            debug=debug,
            isolate=bool(request.get("isolate")),
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
        _say("interrupted before any setting ran")
        return INTERRUPTED
    if not quiet:
        _print_results(space, frame if frame is not None else _results_of(space), 20, prog, found)
    _report_end(finish)
    if finish.interrupted:
        return INTERRUPTED
    return 1 if finish.failed else 0


_RERUN = "--rerun-outdated runs them again"


def _nothing_to_run(
    found: Found, space: Space[Any], stored: Plan, prog: str, *, quiet: bool, only_failed: bool
) -> int:
    cls = space.experiment_class
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


def _store(space: Space[Any]) -> Store:
    from superparams.store import Store

    store = Store.for_space(space)
    store.check()  # another experiment's folder: refused before anything else is said
    return store


def _plan(space: Space[Any], store: Store) -> Plan:
    """What is stored for each setting; with nothing stored, without loading polars."""
    from superparams.store import Plan

    if store.folder.exists():
        from superparams._code import code_hash

        return store.plan(space, code_hash(space.experiment_class))
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


def _resume_text(stored: Plan, to_run: int) -> str:
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


def _ask_resume(stored: Plan, to_run: int) -> str:
    kept = f"skip the {len(stored.done)} completed, " if stored.done else ""
    outdated = ""
    if stored.outdated:
        outdated = f"[o]utdated: also rerun the {len(stored.outdated)} made by earlier code, "
    question = f"Resume ({kept}run {to_run})? [Y]es, {outdated}[f]resh: run all again, [n]o: quit "
    while True:
        answer = _ask(question)
        if answer is None or answer in ("n", "no", "q", "quit"):
            return "quit"
        if answer in ("", "y", "yes"):
            return "resume"
        if answer in ("f", "fresh"):
            return "fresh"
        if outdated and answer in ("o", "outdated"):
            return "outdated"
        sys.stderr.write(f"please answer y, {'o, ' if outdated else ''}f or n\n")


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
    for note in finish.notes:
        _say(note)
    if finish.interrupted:
        _say("run the same command again to resume")
    _say(f"results: {short_path(finish.results)}")


# -- what is shown before ------------------------------------------------------------------


def _overview(found: Found, space: Space[Any], store: Store, earlier: str, name: str) -> str:
    lines = _fields_overview(space)
    cls = space.experiment_class.__name__
    if name != cls:  # a space the file names: `Sub: 4 settings of Train`
        lines[0] = f"{name}{lines[0][len(cls) :]} of {cls}"
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
    lines = [head]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
        lines.append(f"  {'  '.join(cells)}  {row[3]}".rstrip())
    return lines


def _brief(value: Any, width: int = 24) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _plan_text(
    space: Space[Any], stored: Plan, *, fresh: bool, only_failed: bool, rerun_outdated: bool = False
) -> str:
    runs = len(stored.to_run(fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated))
    lines = [f"would run {runs} setting{'s' if runs != 1 else ''} (dry run: nothing is run)"]
    outdated = set(stored.outdated)
    groups = [
        ("new", stored.new, not only_failed),
        ("failed", stored.failed, True),
        ("interrupted", stored.interrupted, not only_failed),
        ("outdated", stored.outdated, fresh or rerun_outdated),
        ("done", [p for p in stored.done if p not in outdated] if outdated else stored.done, fresh),
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
    if stored.outdated:
        how = "run again" if fresh or rerun_outdated else f"kept as stored; {_RERUN}"
        lines.append(f"  {outdated_text(len(stored.outdated), _name(space))} ({how})")
    return "\n".join(lines)


def _name(space: Space[Any]) -> str:
    return space.experiment_class.__name__


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


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
    if "code_version" in frame.columns and frame["code_version"].drop_nulls().n_unique() > 1:
        extra.append("code_version")  # rows made by different code: say which is which
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


def status(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> int:
    for space in spaces:
        _status_one(found, space, request, prog)
    return 0


def _status_one(found: Found, space: Space[Any], request: Request, prog: str) -> None:
    if not space.enumerable:
        _status_stored(found, space, prog)
        return
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
    if stored.outdated:
        out.write(
            f"  {'outdated':<12} {len(stored.outdated)} of the completed were made by an earlier "
            f"version of {cls.__name__}'s code (`{prog} {found.name} --rerun-outdated` runs "
            "them again)\n"
        )
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
    from superparams.runner import _labels

    for note in store.clashes(_labels(space, stored.ids)) if store.folder.exists() else ():
        out.write(f"{note}\n")
    _damaged(store)
    out.write(f"results: {_shown(store.results_path)}\n")
    out.flush()


def _status_stored(found: Found, space: Space[Any], prog: str) -> None:
    """The status of a space that draws settings at random: of every stored setting."""
    from superparams.cli import _is_distribution

    cls = space.experiment_class
    store = _store(space)
    first: dict[str, tuple[str, str, str | None]] = {}  # id -> status, label, error
    if store.folder.exists():
        table = store.table()
        if "status" in table.columns and not table.is_empty():
            table = table.unique(subset="id", keep="first", maintain_order=True)
            errors = table["error"] if "error" in table.columns else [None] * table.height
            for sid, status, label, error in zip(
                table["id"], table["status"], table["label"], errors, strict=True
            ):
                first[sid] = (status, label, error)
    statuses = [s for s, _, _ in first.values()]
    drawn = [n for n in cls._sp_info().fields if _is_distribution(space, n)] or ["a field"]
    verb = "is" if len(drawn) == 1 else "are"
    out = sys.stdout
    total = len(first)
    out.write(
        f"{cls.__name__} ({_shown(found.path)}): {total} setting{'s' if total != 1 else ''} "
        f"stored ({', '.join(drawn)} {verb} drawn from a distribution: all stored settings "
        "are shown)\n"
    )
    for name in ("completed", "failed", "running", "interrupted"):
        count = statuses.count(name)
        if count or name in ("completed", "failed"):
            out.write(f"  {name:<12} {count}\n")
    if store.is_locked():
        out.write("a run is in progress\n")
    left = [(s, label, e) for s, label, e in first.values() if s in ("failed", "interrupted")]
    if left:
        out.write(
            f"not completed: {len(left)} (`{prog} {found.name} --sample N --sample-seed S`, with "
            "the N and S they were drawn with, runs them again)\n"
        )
        for status, label, error in left[:20]:
            shown_error = f"  {error}" if status == "failed" and error else ""
            out.write(f"  {status:<12} {label}{shown_error}\n")
        if len(left) > 20:
            out.write(f"  ... {len(left) - 20} more\n")
    _damaged(store)
    out.write(f"results: {_shown(store.results_path)}\n")
    out.flush()


def _damaged(store: Store) -> None:
    """Say how many lines of the record were damaged and skipped, if any."""
    damaged = store.damaged() if store.folder.exists() else 0
    if damaged:
        lines = "line" if damaged == 1 else "lines"
        sys.stdout.write(f"record: {damaged} damaged {lines} skipped\n")


def results(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> int:
    if len(spaces) > 1 and (request.get("csv") or request.get("json") or request.get("parquet")):
        names = ", ".join(s.experiment_class.__name__ for s in spaces)
        msg = f"{found.name} holds several experiments ({names}); export one: {found.name}.CLASS"
        raise UsageError(msg)
    for space in spaces:
        _results_one(found, space, request, prog, several=len(spaces) > 1)
    return 0


def _results_one(
    found: Found, space: Space[Any], request: Request, prog: str, *, several: bool
) -> None:
    if request.get("parquet"):
        _check_export(Path(request.get("parquet")), force=bool(request.get("force")))
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
        if request.get("force"):
            frame.write_parquet(path)
        else:
            try:  # made new, so a file that appeared since is not overwritten either
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                _check_export(path, force=False)
                raise
            with os.fdopen(fd, "wb") as f:
                frame.write_parquet(f)
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


def _check_export(path: Path, *, force: bool) -> None:
    """Refuse an export that would replace a file unasked, or that has no folder to go in.

    Raises:
        UsageError: before anything is written.
    """
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        msg = (
            f"--parquet {str(path)!r}: {str(folder)!r} {what}; make the folder, or give "
            "another path"
        )
        raise UsageError(msg)
    if path.is_dir():
        msg = f"--parquet {str(path)!r} is a folder; give the path of a file in it"
        raise UsageError(msg)
    if not force and (path.exists() or path.is_symlink()):
        msg = f"--parquet {str(path)!r} exists; add --force to replace it, or give another path"
        raise UsageError(msg)


def _flat(frame: pl.DataFrame) -> pl.DataFrame:
    """The table with nested columns (lists, structs) as JSON text, which CSV can hold."""
    import json

    import polars as pl

    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v) for v in frame[name].to_list()])
        for name in nested
    )


def logs(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> int:
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
        if log.path.exists() or log.path.is_symlink():
            _print_log(log.path, request.get("lines"))
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


_BLOCK = 1 << 16  # how much of a log is read at a time


def _open_log(path: Path) -> BinaryIO:
    """A setting's log for reading, never through a link planted in its place."""
    from superparams.store import open_in_store

    return os.fdopen(open_in_store(path, os.O_RDONLY), "rb")


def _print_log(path: Path, lines: int | None) -> None:
    """Print a log, or its last ``lines`` lines, read from its end: a large log costs
    what is printed, not its size."""
    with _open_log(path) as f:
        size = os.fstat(f.fileno()).st_size
        if lines is not None:
            text = _last_lines(f, size, lines)[1]
            sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
            return
        _copy_out(f, size, "")


def _last_lines(f: BinaryIO, end: int, lines: int) -> tuple[int, str]:
    """The last ``lines`` lines of the first ``end`` bytes of a file, read backwards
    from ``end``, and where the bytes read start."""
    import codecs

    data = b""
    pos = end
    block = _BLOCK
    while pos > 0 and data.count(b"\n") <= lines:
        start = max(0, pos - block)
        f.seek(start)
        data = f.read(pos - start) + data
        pos = start
        block *= 2
    if lines == 0:
        return pos, ""
    text = codecs.decode(data, "utf-8", errors="replace")
    return pos, "".join(text.splitlines(keepends=True)[-lines:])


def _copy_out(f: BinaryIO, end: int, label: str) -> None:
    """Print a file's bytes from where it is to ``end``, a block at a time."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    left = end - f.tell()
    text = ""  # a line not yet ended: printed with the next block, labelled once
    while left > 0:
        data = f.read(min(left, 16 * _BLOCK))
        if not data:
            break
        left -= len(data)
        text += decoder.decode(data)
        whole = text.rfind("\n") + 1
        if whole:
            _write_log(text[:whole], label)
            text = text[whole:]
    text += decoder.decode(b"", final=True)
    if text:
        _write_log(text + "\n", label)


def _follow(running: list[_Log], lines: int | None) -> int:
    """Print the logs of running settings as they grow, until each one ends."""
    import time

    prefix = len(running) > 1
    offsets: dict[str, int] = {}
    for log in running:
        label = log.label if prefix else ""
        offsets[log.id] = 0
        if not (log.path.exists() or log.path.is_symlink()):
            continue
        with _open_log(log.path) as f:
            # whole lines now, the rest as it completes
            start, _ = _last_lines(f, os.fstat(f.fileno()).st_size, 0)
            f.seek(start)
            end = offsets[log.id] = start + f.read().rfind(b"\n") + 1
            if lines is None:
                f.seek(0)
                _copy_out(f, end, label)
            else:
                _write_log(_last_lines(f, end, lines)[1], label)
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
        with _open_log(path) as f:
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


def clean(found: Found, spaces: list[Space[Any]], request: Request, prog: str) -> int:
    from superparams.store import Store

    for cls in found.classes:
        store = Store.for_class(cls)
        if not store.folder.exists():
            _say(f"nothing stored for {cls.__name__} ({_shown(store.folder)} does not exist)")
            continue
        _check_unlocked(store)
        count = store.count()
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
