"""``experiment EXPERIMENT``: run the settings not completed yet.

For each space the name stands for: the overview, the resume question, the display, the
run through the same ``run_all`` a notebook calls, and the end of run report.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._requests import Exit
from superparams._cli._shared import (
    ask,
    check_unlocked,
    interactive,
    plan_of,
    print_results,
    results_of,
    say,
    store_of,
    write_json,
)
from superparams._store._plan import outdated_kind
from superparams.errors import Interrupted, SuperparamsError

if TYPE_CHECKING:
    import polars as pl

    from superparams._cli._find import Found
    from superparams._cli._requests import RunRequest
    from superparams._space import Space
    from superparams._store._plan import Plan
    from superparams._store._writer import Store
    from superparams.events import Event, RunFinished

INTERRUPTED = Interrupted.exit_code


def run(found: Found, spaces: list[Space[Any]], request: RunRequest, prog: str) -> None:
    from superparams._runner import stop_signals

    codes = []
    names = found.names or tuple(s.experiment_class.__name__ for s in spaces)
    if request.optimize is not None:
        from superparams._cli.search import search

        one = search
    else:
        one = _run_one
    for number, (space, name) in enumerate(zip(spaces, names, strict=True)):
        if number and not request.quiet:
            say("")  # a blank line between the experiments of one file
        with stop_signals():  # SIGTERM or SIGHUP while it reads the store: as Ctrl-C
            code = one(found, space, request, prog, name)
        codes.append(code)
        if code == INTERRUPTED:
            break
    if INTERRUPTED in codes:
        raise Interrupted  # the run's report has said so
    if max(codes):
        raise Exit(max(codes))


def _run_one(found: Found, space: Space[Any], request: RunRequest, prog: str, name: str) -> int:
    from superparams._api import reattaches, run_all
    from superparams._run_options import worker_count

    cls = space.experiment_class
    store = store_of(space)
    quiet, dry_run = bool(request.quiet), bool(request.dry_run)
    fresh, only_failed = bool(request.fresh), bool(request.rerun_failed)
    rerun_outdated: str | bool = request.rerun_outdated or False  # code, env or all
    held = reattaches(request.engine)  # an engine that collects what its queue holds

    def taken() -> int:
        return len(
            stored.to_run(
                fresh=fresh, only_failed=only_failed, rerun_outdated=rerun_outdated, queued=held
            )
        )

    if not dry_run:
        check_unlocked(store)
    try:
        stored = plan_of(space, store)
    except KeyboardInterrupt:
        say("interrupted while reading what is stored, before any setting ran; nothing changed")
        return INTERRUPTED
    if request.json:  # --dry-run --json: the plan as one object, and nothing else
        write_json(
            "plan",
            {
                "experiment": cls.__name__,
                "folder": str(store.folder),
                "settings": len(set(stored.ids)),
                "stored": {
                    "completed": len(stored.done),
                    "failed": len(stored.failed),
                    "interrupted": len(stored.interrupted),
                    "queued": len(stored.queued),
                    "gone": len(stored.stale),
                    "outdated": len(stored.outdated),
                    "outdated_env": len(stored.env_outdated),
                },
                "new": len(stored.new),
                "would_run": taken(),
            },
        )
        return 0
    earlier = len(stored.done) + len(stored.failed) + len(stored.interrupted) + len(stored.queued)
    if not quiet or dry_run:
        summary = stored.summary() if earlier or stored.stale else ""
        say(_overview(found, space, store, summary, name))
    if dry_run:
        say(
            _plan_text(
                space,
                stored,
                taken(),
                fresh=fresh,
                only_failed=only_failed,
                rerun_outdated=rerun_outdated,
                queued=held,
            )
        )
        return 0
    if stored.outdated and not fresh and outdated_kind(rerun_outdated) not in ("code", "all"):
        # said even with --quiet: these results are kept, but they are not from this code
        say(f"{_outdated(len(stored.outdated), cls.__name__)}; kept as stored ({_RERUN})")
    if stored.env_outdated and not fresh and outdated_kind(rerun_outdated) not in ("env", "all"):
        say(_env_text(stored, "kept as stored"))
    if stored.queued and not held:  # said even with --quiet: this run leaves them be
        say(_queued_text(store, len(stored.queued), prog, found, cls.__name__))
    to_run = taken()
    resuming = earlier and not fresh and not only_failed and not rerun_outdated
    asking = resuming and interactive() and not request.yes
    if not to_run and not (asking and stored.outdated):
        return _nothing_to_run(found, space, stored, prog, quiet=quiet, only_failed=only_failed)
    if resuming:
        if asking:
            if quiet:  # the overview did not say what was found
                say(f"stored: {stored.summary()}")
            answer = _ask_resume(stored, to_run)
            if answer == "quit":
                say("nothing run")
                return 0
            fresh, rerun_outdated = answer == "fresh", answer == "outdated"
            to_run = taken()
            if not to_run:
                return _nothing_to_run(found, space, stored, prog, quiet=quiet, only_failed=False)
        elif not quiet:
            say(f"resuming: {_resume_text(stored, to_run)}")

    gpus = request.gpus
    asked = request.num_proc
    if asked is None:
        from superparams.executors import get_executor

        default = get_executor(request.engine or "local").default_num_proc
        asked = len(gpus) if gpus else default or 1
    _, num_proc, notice = worker_count(asked, to_run, flag="-j", equals=" ")
    if notice:
        say(notice)
    debug = bool(request.debug)
    if debug and num_proc > 1:
        say("--debug runs settings one by one in this process; -j is ignored")
    if not quiet:
        engine = request.engine or "local"
        here = debug or engine == "inline"
        where = "in this process" if here else f"on {num_proc} worker process"
        where += "es" if not here and num_proc > 1 else ""
        if engine not in ("local", "inline") and not debug:
            where = f"on the {engine} engine"
        say(f"running {to_run} setting{'s' if to_run != 1 else ''} {where}")
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
            timeout=request.timeout,
            retries=request.retries,
            engine=request.engine or "local",
            engine_options={**(request.engine_options or {}), "detach": True}
            if request.detach
            else request.engine_options,
            debug=debug,
            isolate=bool(request.isolate),
            display=display,
            subscribers=[_collect(ended)],
            stop=request.stop,
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
    if finish is None:  # stopped before the run began: what was stored stays as it was
        say(f"interrupted before any setting ran; stored: {stored.summary()}")
        return INTERRUPTED
    if not quiet:
        print_results(space, frame if frame is not None else results_of(space), 20, prog, found)
    _report_end(finish)
    if request.detach and finish.queued:
        queue = request.engine  # --detach takes only an engine that queues
        say(
            f"{finish.queued} setting{'s' if finish.queued != 1 else ''} queued on "
            f"{queue}: `{prog} {found.name} --engine {queue}` collects them, "
            f"`{prog} status {found.name}` shows how they stand"
        )
    if finish.interrupted:
        return INTERRUPTED
    return 1 if finish.failed else 0


def _queued_text(store: Store, count: int, prog: str, found: Found, name: str) -> str:
    from superparams._api import queued_on, queued_where

    engines = queued_on(store)
    collects = " or ".join(f"`{prog} {found.name} --engine {e}`" for e in engines)
    return (
        f"{name}: {count} setting{'s are' if count != 1 else ' is'} queued on "
        f"{queued_where(engines)} and left to {'it' if len(engines) == 1 else 'them'} "
        f"({collects} collects them)"
    )


_RERUN = "--rerun-outdated runs them again"


def _nothing_to_run(
    found: Found, space: Space[Any], stored: Plan, prog: str, *, quiet: bool, only_failed: bool
) -> int:
    cls = space.experiment_class
    if only_failed:
        say(f"{cls.__name__}: no failed settings to run again")
    elif stored.queued:
        say(f"{cls.__name__}: nothing else to run")
    elif stored.died:
        n = len(stored.died)
        it = "it" if n == 1 else "them"
        say(
            f"{cls.__name__}: nothing else to run; {n} failed setting{'s' if n != 1 else ''} "
            f"{'was' if n == 1 else 'were'} running in-process when the run's process died, "
            f"and a resume leaves {it} out (--rerun-failed runs {it} again)"
        )
    else:
        say(
            f"{cls.__name__}: all {len(stored.done)} settings completed before; nothing to "
            "run (--fresh runs them again)"
        )
    if not quiet:
        print_results(space, results_of(space), limit=20, prog=prog, found=found)
    return 0


def _resume_text(stored: Plan, to_run: int) -> str:
    died = set(stored.died)  # left out: --rerun-failed runs them
    parts = [
        f"{len(v)} {k}"
        for k, v in (
            ("failed", [p for p in stored.failed if p not in died]),
            ("interrupted", stored.interrupted),
            ("queued", stored.queued),
            ("new", stored.new),
        )
        if v
    ]
    kept = f"{len(stored.done)} completed before are kept; " if stored.done else ""
    return f"{kept}running {to_run} ({', '.join(parts)})"


def _ask_resume(stored: Plan, to_run: int) -> str:
    kept = f"skip the {len(stored.done)} completed, " if stored.done else ""
    outdated = ""
    if stored.outdated:
        outdated = f"[o]utdated: also rerun the {len(stored.outdated)} made by earlier code, "
    question = f"Resume ({kept}run {to_run})? [Y]es, {outdated}[f]resh: run all again, [n]o: quit "
    while True:
        answer = ask(question)
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
    from superparams._display import PlainDisplay

    if quiet:
        return PlainDisplay(quiet=True, header=False, summary=False)
    if debug or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb":
        return PlainDisplay(header=False, summary=False)
    from superparams._display import LiveDisplay

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
        say("(no terminal: not opening the debugger)")
        return 1
    import pdb

    say("opening the debugger (pdb) where it failed; 'q' quits")
    pdb.post_mortem(error.__traceback__)
    return 1


def _report_end(finish: RunFinished) -> None:
    from superparams._display import short_path, summary

    for failed in finish.failures:
        say(f"failed: {failed.label}: {failed.failure.error}")
        if failed.log:
            say(f"  log: {short_path(failed.log)}")
    say(summary(finish))
    for note in finish.notes:
        say(note)
    if finish.interrupted:
        say("run the same command again to resume")
    say(f"results: {short_path(finish.results)}")


# -- what is shown before ------------------------------------------------------------------


def _overview(found: Found, space: Space[Any], store: Store, earlier: str, name: str) -> str:
    lines = _fields_overview(space)
    cls = space.experiment_class.__name__
    if name != cls:  # a space the file names: `Sub: 4 settings of Train`
        lines[0] = f"{name}{lines[0][len(cls) :]} of {cls}"
    lines[0] += f"  ({shown(found.path)})"
    lines.append(f"stored:  {earlier or 'nothing yet'}")
    lines.append(f"results: {shown(store.results_path)}")
    lines.append(f"logs:    {shown(store.folder / 'logs')}{os.sep}")
    return "\n".join(lines)


def _fields_overview(space: Space[Any]) -> list[str]:
    """The experiment's name and size, then a line per field: as ``print(space)`` shows."""
    from superparams._experiment import Experiment
    from superparams._overview import overview

    if isinstance(space, Experiment):
        return overview(space).splitlines()
    n = len(space)  # a sample or a union: it describes itself
    head = f"{space.experiment_class.__name__}: {n:,} setting{'s' if n != 1 else ''}"
    return [head, *str(space).splitlines()]


def _plan_text(
    space: Space[Any],
    stored: Plan,
    runs: int,
    *,
    fresh: bool,
    only_failed: bool,
    rerun_outdated: bool | str = False,
    queued: bool = False,
) -> str:
    lines = [f"would run {runs} setting{'s' if runs != 1 else ''} (dry run: nothing is run)"]
    kind = outdated_kind(rerun_outdated)
    outdated = set(stored.outdated)
    env = [p for p in stored.env_outdated if p not in outdated]
    outdated.update(env)
    died = set(stored.died)  # its process died with it: run only when asked
    groups = [
        ("new", stored.new, not only_failed),
        ("failed", [p for p in stored.failed if p not in died], True),
        ("failed", stored.died, only_failed or fresh),
        ("interrupted", stored.interrupted, not only_failed),
        ("queued", stored.queued, queued and not only_failed),
        ("outdated", stored.outdated, fresh or kind in ("code", "all")),
        ("environment", env, fresh or kind in ("env", "all")),
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
        again = fresh or kind in ("code", "all")
        how = "run again" if again else f"kept as stored; {_RERUN}"
        lines.append(f"  {_outdated(len(stored.outdated), _name(space))} ({how})")
    if stored.env_outdated:
        again = fresh or kind in ("env", "all")
        lines.append("  " + _env_text(stored, "run again" if again else "kept as stored"))
    return "\n".join(lines)


def _env_text(stored: Plan, how: str) -> str:
    """What a run says of the settings that ran in another environment: what changed
    (a line per change), and what it does with them."""
    n = len(stored.env_outdated)
    head = f"{n} stored setting{'s' if n != 1 else ''} ran in another environment"
    rerun = "" if how == "run again" else "; --rerun-outdated=env runs them again"
    changes = "".join(f"\n    {line}" for line in stored.env_text())
    return f"{head} ({how}{rerun}):{changes}"


def _outdated(count: int, name: str) -> str:
    from superparams._display import outdated

    return outdated(count, name)


def _name(space: Space[Any]) -> str:
    return space.experiment_class.__name__


# -- tables ----------------------------------------------------------------------------------


# -- status, results, logs, clean -------------------------------------------------------------
