"""``experiment diff EXPERIMENT A B``: each setting's metrics under two code versions."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from superparams._cli._shared import only_one, results_of, say, write_json
from superparams._cli._table import cell, table

if TYPE_CHECKING:
    from superparams._cli._find import Found
    from superparams._cli._requests import DiffRequest
    from superparams._space import Space
    from superparams._versions import Compared


def diff(found: Found, spaces: list[Space[Any]], request: DiffRequest, prog: str) -> None:
    from superparams._versions import ALL, compare

    only_one(found, spaces, "compare")
    space = spaces[0]
    a, b = request.versions
    table = results_of(space, ALL)
    compared = compare(space, table, a, b, list(request.metric) if request.metric else None)
    if request.json:
        _json(space, compared)
        return
    say(
        f"A: {compared.a}\nB: {compared.b}\n"
        f"{compared.settings.height} settings have an outcome under both"
    )
    _settings(compared)
    if compared.summary is not None:
        sys.stdout.write(f"\nover {', '.join(compared.over)}:\n")
        _summary(compared)


def _settings(compared: Compared) -> None:
    """One row per setting: each metric under A, under B, and the change."""
    frame, metrics = compared.settings, compared.metrics
    headers = ["setting"]
    for m in metrics:
        headers += [f"{m} A", f"{m} B", "change" if len(metrics) == 1 else f"{m} change"]
    rows = []
    for row in frame.iter_rows(named=True):
        line = [row["label"] or row["id"]]
        for m in metrics:
            line += [cell(row[f"{m}_a"], m), cell(row[f"{m}_b"], m), _change(row[f"{m}_change"])]
        rows.append(line)
    table(headers, rows, sys.stdout)


def _summary(compared: Compared) -> None:
    """One row per setting of the other fields: mean ± std under A and B, the change of
    the mean."""
    from superparams._cli.results import mean_std

    frame, metrics = compared.summary, compared.metrics
    assert frame is not None  # the caller checked
    keys = [c for c in frame.columns if not any(c.startswith(f"{m}_") for m in metrics)]
    headers = list(keys)
    for m in metrics:
        change = "change of mean" if len(metrics) == 1 else f"{m} change of mean"
        headers += [f"{m} A", f"{m} B", change]
    rows = []
    for row in frame.iter_rows(named=True):
        line = [cell(row[k], k) for k in keys]
        for m in metrics:
            for end in ("a", "b"):
                line.append(
                    mean_std(row[f"{m}_mean_{end}"], row[f"{m}_std_{end}"], row[f"{m}_n_{end}"])
                )
            line.append(_change(row[f"{m}_mean_change"]))
        rows.append(line)
    table(headers, rows, sys.stdout)


def _change(value: float | None) -> str:
    """A change, signed: ``+0.12``, ``-3``; empty when either side has no value."""
    if value is None:
        return ""
    return f"{value:+.4g}"


def _json(space: Space[Any], compared: Compared) -> None:
    import json

    def version(v: Any) -> dict[str, Any]:
        return {"code_version": v.code_version, "git_commit": v.git_commit}

    body: dict[str, Any] = {
        "experiment": space.experiment_class.__name__,
        "a": version(compared.a),
        "b": version(compared.b),
        "metrics": list(compared.metrics),
        "over": list(compared.over),
        "summary": None if compared.summary is None else json.loads(compared.summary.write_json()),
    }
    write_json("diff", body, compared.settings)
