"""``experiment status EXPERIMENT``: how many settings completed, failed, run, are left."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._shared import plan_of, store_of
from superparams._declared import declared

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import StatusRequest
    from superparams._space import Space
    from superparams._store._writer import Store


def status(found: Found, spaces: list[Space[Any]], request: StatusRequest, prog: str) -> None:
    if request.json:
        from superparams._cli._shared import write_json

        write_json("status", {"experiments": [_facts(space) for space in spaces]})
        return
    for space in spaces:
        _status_one(found, space, request, prog)


def _facts(space: Space[Any]) -> dict[str, Any]:
    """What ``status`` says of one space, as the values of ``--json``."""
    from superparams._search import standing

    cls = space.experiment_class
    store = store_of(space)
    exists = store.folder.exists()
    known = store.statuses() if exists else {}
    facts: dict[str, Any] = {"experiment": cls.__name__, "folder": str(store.folder)}
    if space.enumerable:
        stored = plan_of(space, store)
        running = {sid for sid, s in known.items() if s.status == "running"}
        interrupted = [p for p in stored.interrupted if stored.ids[p] not in running]
        counts = {
            "completed": len(stored.done),
            "failed": len(stored.failed),
            "running": len(stored.interrupted) - len(interrupted),
            "interrupted": len(interrupted),
            "queued": len(stored.queued),
            "new": len(stored.new),
        }
        facts["settings"] = len(set(stored.ids))
        facts["gone"] = len(stored.stale)
        facts["outdated"] = len(stored.outdated)
        facts["outdated_env"] = len(stored.env_outdated)
        facts["environment_changes"] = [
            {"package": name, "was": was, "now": now, "settings": count}
            for name, was, now, count in stored.env_changes
        ]
        left = [
            (space[p].label, stored.ids[p])
            for p in sorted(stored.failed + interrupted + stored.new)
        ]
    else:  # every stored setting
        statuses = [s.status for s in known.values()]
        names = ("completed", "failed", "running", "interrupted", "queued")
        counts = {name: statuses.count(name) for name in names}
        facts["settings"] = len(known)
        left = [(s.label, sid) for sid, s in known.items() if s.status in ("failed", "interrupted")]
    facts["counts"] = counts
    facts["left"] = [
        {
            "label": label,
            "status": known[sid].status if sid in known else "new",
            "error": known[sid].error if sid in known else None,
        }
        for label, sid in left
    ]
    facts["in_progress"] = store.is_locked() if exists else False
    facts["damaged_lines"] = store.damaged() if exists else 0
    facts["search"] = standing(space, store) if exists else []
    facts["results"] = str(store.results_path)
    return facts


def _status_one(found: Found, space: Space[Any], request: StatusRequest, prog: str) -> None:
    if not space.enumerable:
        _status_stored(found, space, prog)
        return
    store = store_of(space)
    stored = plan_of(space, store)
    holder = store.holder()
    known = store.statuses()
    running = {sid for sid, s in known.items() if s.status == "running"}
    errors = {sid: s.error for sid, s in known.items() if s.error is not None}
    interrupted = [p for p in stored.interrupted if stored.ids[p] not in running]
    now = [p for p in stored.interrupted if stored.ids[p] in running]
    cls = space.experiment_class
    out = sys.stdout
    total = len(set(stored.ids))
    out.write(f"{cls.__name__} ({shown(found.path)}): {total} setting{'s' if total != 1 else ''}\n")
    counts = [
        ("completed", len(stored.done)),
        ("failed", len(stored.failed)),
        ("running", len(now)),
        ("interrupted", len(interrupted)),
        ("queued", len(stored.queued)),
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
    if stored.env_outdated:
        n = len(stored.env_outdated)
        out.write(
            f"  {'environment':<12} {n} of the completed ran in another environment "
            f"(`{prog} {found.name} --rerun-outdated=env` runs them again):\n"
        )
        for line in stored.env_text():
            out.write(f"    {line}\n")
    if stored.queued:
        held = {stored.ids[p] for p in stored.queued}
        on = store.queued_on()
        for engine in dict.fromkeys(on[sid] for sid in held if sid in on):
            mine = {sid for sid in held if on.get(sid) == engine}
            out.write(
                f"queued on {engine}: {len(mine)}{_standing(store, engine, mine)} "
                f"(`{prog} {found.name} --engine {engine}` collects them)\n"
            )
    if holder is not None:
        out.write(f"a run is in progress ({holder})\n")
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
    from superparams._space import labels_of

    for note in store.clashes(labels_of(space, stored.ids)) if store.folder.exists() else ():
        out.write(f"{note}\n")
    _searching(space, store)
    _damaged(store)
    out.write(f"results: {shown(store.results_path)}\n")
    out.flush()


def _standing(store: Store, engine: str, queued: set[str]) -> str:
    """How the settings ``queued`` on ``engine`` stand in its queue, e.g.
    ``" (2 running, 4 pending)"``; "" when the engine cannot be asked."""
    from collections import Counter

    from superparams._api import detaching

    found = detaching(engine)
    states = found.waiting(store.folder) if found is not None else {}
    if not states:
        return ""
    counts = Counter(states.get(sid, "").lower() or "unknown" for sid in queued)
    return " (" + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")"


def _status_stored(found: Found, space: Space[Any], prog: str) -> None:
    """The status of a space that draws settings at random: of every stored setting."""
    from superparams._cli._spaces import is_distribution

    cls = space.experiment_class
    store = store_of(space)
    first = {sid: (s.status, s.label, s.error) for sid, s in store.statuses().items()}
    statuses = [s for s, _, _ in first.values()]
    drawn = [n for n in declared(cls).fields if is_distribution(space, n)] or ["a field"]
    verb = "is" if len(drawn) == 1 else "are"
    out = sys.stdout
    total = len(first)
    out.write(
        f"{cls.__name__} ({shown(found.path)}): {total} setting{'s' if total != 1 else ''} "
        f"stored ({', '.join(drawn)} {verb} drawn from a distribution: all stored settings "
        "are shown)\n"
    )
    for name in ("completed", "failed", "running", "interrupted", "queued"):
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
    _searching(space, store)
    _damaged(store)
    out.write(f"results: {shown(store.results_path)}\n")
    out.flush()


def _searching(space: Space[Any], store: Store) -> None:
    """Say how far an adaptive search recorded in the store has come, if one is."""
    if store.folder.exists() and store.search() is not None:  # one was recorded
        from superparams._search import standing

        for line in standing(space, store):
            sys.stdout.write(f"{line}\n")


def _damaged(store: Store) -> None:
    """Say how many lines of the record were damaged and skipped, if any."""
    damaged = store.damaged() if store.folder.exists() else 0
    if damaged:
        lines = "line" if damaged == 1 else "lines"
        sys.stdout.write(f"record: {damaged} damaged {lines} skipped\n")
