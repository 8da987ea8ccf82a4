"""``experiment results EXPERIMENT``: the results table, sorted, shown or exported."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superparams.cli._find import shown
from superparams.cli._shared import columns_of, print_results, results_of, say
from superparams.errors import UsageError, did_you_mean

if TYPE_CHECKING:
    import polars as pl

    from superparams.cli._find import Found
    from superparams.cli._parse import ResultsRequest
    from superparams.space import Space


def results(found: Found, spaces: list[Space[Any]], request: ResultsRequest, prog: str) -> None:
    if len(spaces) > 1 and (request.csv or request.json or request.parquet):
        names = ", ".join(s.experiment_class.__name__ for s in spaces)
        msg = f"{found.name} holds several experiments ({names}); export one: {found.name}.CLASS"
        raise UsageError(msg)
    for space in spaces:
        _results_one(found, space, request, prog, several=len(spaces) > 1)


def _results_one(
    found: Found, space: Space[Any], request: ResultsRequest, prog: str, *, several: bool
) -> None:
    if request.parquet:
        _check_export(Path(request.parquet), force=bool(request.force))
    frame = results_of(space)
    cls = space.experiment_class
    sort = request.sort
    if sort:
        descending = bool(request.desc) or sort.startswith("-")
        column = sort.removeprefix("-") if sort not in frame.columns else sort
        if column not in frame.columns:
            msg = (
                f"--sort: no column {column!r}{did_you_mean(column, frame.columns)}; "
                f"columns: {', '.join(frame.columns)}"
            )
            raise UsageError(msg)
        frame = frame.sort(column, descending=descending, nulls_last=True, maintain_order=True)
    if request.parquet:
        path = Path(request.parquet)
        if request.force:
            frame.write_parquet(path)
        else:
            try:  # made new, so a file that appeared since is not overwritten either
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                _check_export(path, force=False)
                raise
            with os.fdopen(fd, "wb") as f:
                frame.write_parquet(f)
        say(f"wrote {frame.height} rows to {shown(path)}")
        return
    if request.csv:
        sys.stdout.write(_flat(frame).write_csv())
        return
    if request.json:
        sys.stdout.write(frame.write_json() + "\n")
        return
    if several:
        sys.stdout.write(f"{cls.__name__}:\n")
    if frame.is_empty():
        say(f"no results stored for {cls.__name__} yet (`{prog} {found.name}` runs it)")
        return
    columns = columns_of(frame, cls)
    if sort and column not in columns:
        columns = [column, *columns]
    print_results(space, frame, None, prog, found, columns)


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
