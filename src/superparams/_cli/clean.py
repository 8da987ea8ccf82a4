"""``experiment clean EXPERIMENT``: delete what is stored for each class, after asking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from superparams._cli._find import shown
from superparams._cli._shared import ask, check_unlocked, interactive, say, write_json
from superparams.errors import UsageError

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import CleanRequest
    from superparams._space import Space


def clean(found: Found, spaces: list[Space[Any]], request: CleanRequest, prog: str) -> None:
    from superparams._api import cancel_queued, queued_on, queued_where
    from superparams._store import _workdir
    from superparams._store._layout import WORK
    from superparams._store._writer import Store

    for cls in found.classes:
        store = Store.for_class(cls)
        if not store.folder.exists():
            if request.json:
                write_json(
                    "clean",
                    {"experiment": cls.__name__, "folder": str(store.folder), "settings": 0}
                    | {"setting_folders": 0, "queued": 0},
                )
            else:
                say(f"nothing stored for {cls.__name__} ({shown(store.folder)} does not exist)")
            continue
        if not request.dry_run:
            check_unlocked(store)
        count, folders = store.count(), _workdir.count(store.folder)
        kept = f"{count} stored setting{'s' if count != 1 else ''} of {cls.__name__}"
        if folders:
            plural = "s" if folders != 1 else ""
            kept = f"{kept}, their logs and {folders} setting folder{plural} ({WORK}/)"
        else:
            kept = f"{kept} and their logs"
        what = f"{kept} in {shown(store.folder)}"
        on = queued_on(store)
        queued, where = sum(on.values()), queued_where(on)
        if request.dry_run:  # say what would go, delete nothing
            if request.json:
                body: dict[str, Any] = {"experiment": cls.__name__, "folder": str(store.folder)}
                body |= {"settings": count, "setting_folders": folders, "queued": queued}
                write_json("clean", body)
            else:
                cancel = f", cancelling the {where} jobs of {queued} queued" if queued else ""
                say(f"would delete {what}{cancel}; nothing deleted")
            continue
        asked = what
        if queued:
            asked += f", cancelling the {where} jobs of its {queued} queued setting"
            asked += "s" if queued != 1 else ""
        if not request.yes:
            if not interactive():
                msg = f"clean deletes {asked}; with no terminal to confirm, add --yes"
                raise UsageError(msg)
            answer = ask(f"Delete {asked}? [y/N] ")
            if answer not in ("y", "yes"):
                say("nothing deleted")
                continue
        cancelled = cancel_queued(store, queued)
        store.clean()
        if cancelled:
            plural = "s" if cancelled != 1 else ""
            say(f"cancelled the {where} jobs of {cancelled} queued setting{plural}")
        say(f"deleted {what}")
