"""What the store knows of a space's settings: a run's :class:`Plan` (which settings
are new, completed, failed, interrupted, queued, outdated) and each setting's latest
:class:`Status`, as the read side (:mod:`superparams._store._read`) makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from superparams._outcome import DIED_IN_PROCESS
from superparams.errors import UsageError

if TYPE_CHECKING:
    import polars as pl

#: What ``rerun_outdated`` takes, besides True (the code's) and False.
OUTDATED_KINDS = ("code", "env", "all")


def outdated_kind(value: bool | str | None) -> str | None:
    """The kind of outdated settings ``rerun_outdated`` asks to run again (``code``,
    ``env`` or ``all``), or None for none.

    Raises:
        UsageError: a value that is none of them.
    """
    if value is None or value is False:
        return None
    if value is True:
        return "code"
    if value not in OUTDATED_KINDS:
        msg = f"rerun_outdated takes True, False, 'code', 'env' or 'all', got {value!r}"
        raise UsageError(msg)
    return str(value)


@dataclass
class Plan:
    """What a run of a space would do, by setting id."""

    new: list[int] = field(default_factory=list)  # positions in the space
    done: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    interrupted: list[int] = field(default_factory=list)
    # handed to an engine that runs them without the driver (Slurm jobs), not ended yet
    queued: list[int] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # stored ids no longer in the space
    # done positions whose stored code_version is known and not the current one
    outdated: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # id of every position
    # Failed positions that were running in a run's own process when it died (engine
    # inline): a resume leaves them out, as they would end it again; only_failed and
    # fresh run them. `unrecorded`: those the record holds no outcome of yet.
    died: list[int] = field(default_factory=list)
    unrecorded: list[int] = field(default_factory=list)
    # done positions whose stored environment differs from today's in the version of a
    # package it lists, or of Python; and each such change, with how many settings ran
    # before it, most first
    env_outdated: list[int] = field(default_factory=list)
    env_changes: list[tuple[str, str, str | None, int]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.ids)

    def to_run(
        self,
        *,
        fresh: bool = False,
        only_failed: bool = False,
        rerun_outdated: bool | str = False,
        queued: bool = False,
    ) -> list[int]:
        """The positions a run takes: what is not completed (a setting standing twice in
        the space, once), or with ``fresh`` every setting, or with ``only_failed`` the
        failed ones; ``rerun_outdated`` adds the outdated (see :meth:`rerun`).

        Queued settings (in a Slurm queue, say) are left to the engine that holds them,
        even with ``fresh``: no run starts a setting a job may be running. With
        ``queued`` (a run of that engine, which collects them) they are taken too.
        """
        held = set() if queued else set(self.queued)
        if fresh:
            seen: set[str] = set()
            positions = []
            for position, sid in enumerate(self.ids):
                if sid not in seen:
                    seen.add(sid)
                    if position not in held:
                        positions.append(position)
            return positions
        outdated = self.rerun(rerun_outdated)
        if only_failed:
            return sorted(self.failed + outdated)
        taken = self.queued if queued else []
        died = set(self.died)  # a resume leaves them out: they would end it again
        failed = [p for p in self.failed if p not in died] if died else self.failed
        return sorted(self.new + failed + self.interrupted + outdated + taken)

    def rerun(self, rerun_outdated: bool | str | None) -> list[int]:
        """The outdated positions ``rerun_outdated`` runs again: by the code's version
        (True, ``"code"``), by the environment (``"env"``), or either (``"all"``)."""
        kind = outdated_kind(rerun_outdated)
        if kind is None:
            return []
        if kind == "code":
            return self.outdated
        if kind == "env":
            return self.env_outdated
        return sorted(set(self.outdated) | set(self.env_outdated))

    def env_text(self, most: int = 3) -> list[str]:
        """What changed in the environment since settings ran, a line per change, most
        settings first (``12 settings ran with optuna 4.9.0, now 5.0.0``); at most
        ``most`` lines, the last saying how many more."""
        lines = []
        for name, was, now, count in self.env_changes:
            settings = "settings" if count != 1 else "setting"
            lines.append(f"{count} {settings} ran with {name} {was}, now {now or 'not installed'}")
        if len(lines) > most:
            rest = len(lines) - most + 1
            lines = [*lines[: most - 1], f"and {rest} more changes of a package's version"]
        return lines

    def summary(self) -> str:
        kinds = [
            f"{len(self.outdated)} by earlier code" if self.outdated else "",
            f"{len(self.env_outdated)} in another environment" if self.env_outdated else "",
        ]
        earlier = f" ({', '.join(k for k in kinds if k)})" if any(kinds) else ""
        parts = [
            f"{len(self.done)} completed{earlier}",
            f"{len(self.failed)} failed",
            f"{len(self.interrupted)} interrupted",
            f"{len(self.new)} new",
        ]
        if self.queued:
            parts.insert(3, f"{len(self.queued)} queued")
        if self.stale:
            parts.append(f"{len(self.stale)} stored but no longer in the space")
        return ", ".join(parts)


@dataclass(frozen=True)
class Status:
    """The latest stored outcome of one setting, as
    :meth:`~superparams._store._read.Reader.statuses` reads it."""

    status: str  # completed, failed, running (a run holds the folder), interrupted or queued
    label: str | None
    error: str | None  # a failure's one-line error
    ended: float | None  # when the outcome ended, in seconds since the epoch (None: it did not)


def sorted_by_store(
    ids: list[str],
    table: pl.DataFrame,
    code_version: str | None,
    environments: Callable[[set[str]], dict[str, dict[str, Any]]] | None = None,
) -> Plan:
    """The :class:`Plan` of a space whose settings have ``ids`` (one per position), from
    the stored ``table`` (not empty); see :meth:`Reader.plan
    <superparams._store._read.Reader.plan>`. ``environments`` gives the details of the
    stored environments it is asked for, by id."""
    import polars as pl

    columns = ["id", "status", "code_version", "error", "seconds", "environment"]
    # each setting's first row (its latest outcome): as unique(keep="first",
    # maintain_order=True) picks it, in a third of the time on many rows
    stored = table.select(*(c for c in columns if c in table.columns)).filter(
        pl.col("id").is_first_distinct()
    )
    positions = (
        pl.DataFrame({"id": ids}, schema={"id": pl.String})
        .with_row_index("position")
        .unique(subset="id", keep="first", maintain_order=True)
    )
    joined = positions.join(stored, on="id", how="left", maintain_order="left")
    status = pl.col("status")
    died = (status == "failed") & (pl.col("error") == DIED_IN_PROCESS)

    def where(condition: pl.Expr) -> list[int]:
        return joined.filter(condition)["position"].to_list()

    plan = Plan(
        new=where(status.is_null()),
        done=where(status == "completed"),
        outdated=[]
        if code_version is None
        else where((status == "completed") & (pl.col("code_version") != code_version)),
        failed=where(status == "failed"),
        interrupted=where(status.is_in(["completed", "failed", "queued"]).not_()),
        queued=where(status == "queued"),
        stale=stored.join(positions, on="id", how="anti")["id"].to_list(),
        ids=ids,
        died=where(died),
        unrecorded=where(died & pl.col("seconds").is_null()),  # no outcome line yet
    )
    if environments is not None and "environment" in joined.columns:
        ran = joined.filter((status == "completed") & pl.col("environment").is_not_null())
        if not ran.is_empty():
            by_env = ran.group_by("environment", maintain_order=True).agg("position")
            envs = dict(zip(by_env["environment"], by_env["position"].to_list(), strict=True))
            plan.env_outdated, plan.env_changes = _env_outdated(envs, environments(set(envs)))
    return plan


def _env_outdated(
    positions: dict[str, list[int]], details: dict[str, dict[str, Any]]
) -> tuple[list[int], list[tuple[str, str, str | None, int]]]:
    """The positions whose environment (of those in ``details``; one not recorded is not
    known to differ) differs from today's, and each change with its count of settings."""
    from superparams._environment import installed, python_version
    from superparams._store._environments import changes, listed

    names = sorted({name for d in details.values() for name in listed(d)})
    now, python = installed(names), python_version()
    outdated: list[int] = []
    counts: dict[tuple[str, str, str | None], int] = {}
    for env, at in positions.items():
        found = details.get(env)
        changed = changes(found, python, now) if found is not None else []
        if changed:
            outdated += at
            for change in changed:
                counts[change] = counts.get(change, 0) + len(at)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0][0]))
    return sorted(outdated), [(*change, count) for change, count in ranked]
