"""What the store knows of a space's settings: a run's :class:`Plan` (which settings
are new, completed, failed, interrupted, queued, outdated) and each setting's latest
:class:`Status`, as the read side (:mod:`superparams._store._read`) makes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from superparams._outcome import DIED_IN_PROCESS

if TYPE_CHECKING:
    import polars as pl


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

    @property
    def total(self) -> int:
        return len(self.ids)

    def to_run(
        self,
        *,
        fresh: bool = False,
        only_failed: bool = False,
        rerun_outdated: bool = False,
        queued: bool = False,
    ) -> list[int]:
        """The positions a run takes: what is not completed (a setting standing twice in
        the space, once), or with ``fresh`` every setting, or with ``only_failed`` the
        failed ones; ``rerun_outdated`` adds the outdated.

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
        outdated = self.outdated if rerun_outdated else []
        if only_failed:
            return sorted(self.failed + outdated)
        taken = self.queued if queued else []
        died = set(self.died)  # a resume leaves them out: they would end it again
        failed = [p for p in self.failed if p not in died] if died else self.failed
        return sorted(self.new + failed + self.interrupted + outdated + taken)

    def summary(self) -> str:
        earlier = f" ({len(self.outdated)} by earlier code)" if self.outdated else ""
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


def sorted_by_store(ids: list[str], table: pl.DataFrame, code_version: str | None) -> Plan:
    """The :class:`Plan` of a space whose settings have ``ids`` (one per position), from
    the stored ``table`` (not empty); see :meth:`Reader.plan
    <superparams._store._read.Reader.plan>`."""
    import polars as pl

    stored = table.select("id", "status", "code_version", "error", "seconds").unique(
        subset="id", keep="first", maintain_order=True
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

    return Plan(
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
