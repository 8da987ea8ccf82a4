"""``experiment EXPERIMENT --optimize METRIC --budget N``: an adaptive search, said as it goes.

The search runs through the same ``optimize`` a notebook calls; this room says what it
will do, a line for each configuration once its seeds have ended, and how it ended.
``--dry-run`` says how far the stored search is and what it would do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._shared import check_unlocked, say, store_of
from superparams.errors import Interrupted

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import RunRequest
    from superparams._search import Told
    from superparams._space import Space

INTERRUPTED = Interrupted.exit_code


def search(found: Found, space: Space[Any], request: RunRequest, prog: str, name: str) -> int:
    """Run the search the request asks for; the exit code (0, 1 if a configuration
    failed, 130 when interrupted)."""
    from superparams._api import optimize
    from superparams._run_options import worker_count
    from superparams._search import check, seed_count, standing

    metrics, modes = request.objectives
    assert request.budget is not None  # the request checked it
    budget = request.budget
    store = store_of(space)
    sampler = request.sampler or "tpe"
    check(space, metrics, modes, budget, sampler, store.folder)  # type: ignore[arg-type]
    seeds = seed_count(space)
    asked = request.num_proc if request.num_proc is not None else 1
    _, width, notice = worker_count(asked, budget, flag="-j", equals=" ")
    if notice:
        say(notice)
    where = f"{width} at a time" + (f", each on {seeds} seeds" if seeds > 1 else "")
    if request.dry_run:
        said = standing(space, store, metrics, modes, budget)
        said = said or [f"search: 0 of {budget} configurations"]
        say("\n".join(said))
        stored = int(said[0].split()[1])
        say(f"would propose {max(budget - stored, 0)} more configurations ({where})")
        return 0
    check_unlocked(store)
    if not request.quiet:
        goal = ", ".join(
            f"{'maximise' if mode == 'max' else 'minimise'} {metric}"
            for metric, mode in zip(metrics, modes, strict=True)
        )
        say(
            f"{name}: searching {budget} configurations ({goal}; sampler {sampler}, seed "
            f"{request.seed}), {where}; results in {shown(store.folder)}"
        )
    failed: list[int] = []

    def told(event: Told) -> None:
        from superparams._search import described

        configuration = event.configuration
        if configuration.state == "fail":
            failed.append(event.number)
        if not request.quiet:
            line = f"[{event.number}/{event.budget}] {described(configuration, metrics[0])}"
            if event.best is not None:
                line += f"; best so far: {described(event.best, metrics[0])}"
            say(line)

    try:
        optimize(
            space,
            metrics if len(metrics) > 1 else metrics[0],
            modes if len(modes) > 1 else modes[0],  # type: ignore[arg-type]
            budget=budget,
            sampler=sampler,
            seed=request.seed,
            told=told,
            num_proc=width,
            gpus=request.gpus,
            timeout=request.timeout,
            retries=request.retries,
            engine=request.engine or "local",
            engine_options=request.engine_options,
            debug=bool(request.debug),
            display=False,
            stop=request.stop,
        )
    except KeyboardInterrupt:
        say(f"interrupted: the same command goes on with the search (`{prog} {found.name} ...`)")
        return INTERRUPTED
    for line in standing(space, store):
        say(line)
    return 1 if failed else 0
